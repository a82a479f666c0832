"""The images worker with a full queue: assets/s, how much of the machine it uses, its CPU per asset.

For each pool setting, `--assets` image assets are uploaded (stored and recorded as the API does it:
4 MB 12 MP photo-like JPEGs, pending) and their tasks queued before a real worker starts
(`celery -A workers.app worker -Q images`, as the Procfile runs it, with the setting's options), so the
queue is full from the first task on. It reports assets/s from the first claim to the last `ready`, the
CPU seconds of the worker's processes (main process and pool children, from /proc) per asset, and the
cores they kept busy (their CPU time over the wall time). The settings alternate round by round on one
temporary database, one Redis (a per-run key prefix) and local disk; nothing else runs in the stack, so
on an idle 2-core machine a setting that keeps both cores busy shows close to 2.0.

    .venv/bin/python bench/worker_pool.py [--assets 40] [--rounds 2] [--settings c2,c3,c2-prefetch2,c4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.upload_cpu import bench_database, drop_redis_prefix, photo_jpeg  # noqa: E402
from bench.worker_overhead import bench_settings, upload_assets  # noqa: E402
from core import taskqueue  # noqa: E402
from core.settings import Settings  # noqa: E402
from models.db import make_engine  # noqa: E402
from models.tables import Asset  # noqa: E402
from tests.processes import BIN, settings_env  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# Pool settings by name: extra options of the worker's command line (the Procfile's on 2 cores is `c3`).
SETTINGS = {
    "c2": ["--concurrency", "2"],
    "c3": ["--concurrency", "3"],
    "c4": ["--concurrency", "4"],
    "c2-prefetch2": ["--concurrency", "2", "--prefetch-multiplier", "2"],
    "c3-prefetch2": ["--concurrency", "3", "--prefetch-multiplier", "2"],
    "c2-prefetch4": ["--concurrency", "2", "--prefetch-multiplier", "4"],
    "autoscale-4-2": ["--autoscale", "4,2"],
}


def worker_command(options: list[str]) -> list[str]:
    """The Procfile's images worker (task events on, as `-E` and the app's settings say) with `options`."""
    name = f"bench-{time.monotonic_ns()}@%h"
    command = [str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", "images", "-n", name, "-E"]
    return [*command, "-l", "warning", *options]


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of `root` and its live descendants."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        pending += map(int, children)
    return total / TICK


def run_setting(settings: Settings, options: list[str], ids: list[str], log: Path) -> dict:
    engine = make_engine(settings)
    client = taskqueue.make_client(settings)
    for asset_id in ids:
        taskqueue.send(client, taskqueue.MAKE_IMAGE_RENDITIONS, asset_id)

    def counts() -> tuple[int, int]:
        with engine.connect() as connection:
            rows = connection.execute(
                select(Asset.status, func.count()).where(Asset.id.in_(ids)).group_by(Asset.status)
            ).all()
        by_status = dict(rows)
        started = len(ids) - by_status.get("pending", 0)
        return started, by_status.get("ready", 0) + by_status.get("failed", 0)

    env = settings_env(settings)
    with log.open("wb") as out:
        worker = subprocess.Popen(worker_command(options), env=env, cwd=ROOT, stdout=out, stderr=out)
        try:
            while counts()[0] == 0:
                time.sleep(0.01)
            first, cpu = time.perf_counter(), tree_cpu_seconds(worker.pid)
            deadline = first + 600
            while counts()[1] < len(ids):
                if time.perf_counter() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"the worker did not finish: {log.read_text()[-2000:]}")
                time.sleep(0.02)
            wall, cpu = time.perf_counter() - first, tree_cpu_seconds(worker.pid) - cpu
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    with engine.connect() as connection:
        failed = connection.execute(
            select(func.count()).where(Asset.id.in_(ids), Asset.status != "ready")
        ).scalar_one()
    engine.dispose()
    return {"rate": len(ids) / wall, "cpu_per_asset": cpu / len(ids), "cores": cpu / wall, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", default="c2,c3,c2-prefetch2,c4", help=f"of {', '.join(SETTINGS)}")
    args = parser.parse_args()
    chosen = args.settings.split(",")

    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp, bench_database() as url:
        directory = Path(tmp)
        settings = bench_settings(url, directory)
        redis_url, prefix = settings.redis_url, settings.redis_key_prefix
        originals = [photo_jpeg(seed=seed) for seed in range(4)]
        results: dict[str, list[dict]] = {name: [] for name in chosen}
        try:
            for round_ in range(args.rounds):
                for name in chosen if round_ % 2 == 0 else list(reversed(chosen)):
                    ids = upload_assets(settings, args.assets, originals)
                    log = directory / f"{name}-{round_}.log"
                    results[name].append(run_setting(settings, SETTINGS[name], ids, log))
        finally:
            drop_redis_prefix(redis_url, prefix)
    print(
        f"\nImages worker, {args.assets} queued 12 MP JPEGs per run, {args.rounds} runs per setting (median)"
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| setting | assets/s | worker CPU ms/asset | cores kept busy | not ready |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        rate, cpu, cores = (
            statistics.median(run[key] for run in runs) for key in ("rate", "cpu_per_asset", "cores")
        )
        failed = sum(run["failed"] for run in runs)
        print(f"| {name} | {rate:.2f} | {cpu * 1000:.0f} | {cores:.2f} | {failed} |")


if __name__ == "__main__":
    main()
