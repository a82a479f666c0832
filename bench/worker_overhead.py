"""Worker overhead: what an image task costs beyond its media function, before and after a change.

The image task (`images.make_renditions`) runs as a prefork pool child runs it, through Celery's tracer
(signals, logging context, metrics, the retry policy), with the worker's real context: a temporary
PostgreSQL database, Redis (a per-run key prefix) and local disk. Each contender is a fresh interpreter
that loads the worker app of its tree (this one, or `--before`, default: where this branch left `main`,
exported whole with `git archive`) and renders its own share of the same uploaded originals (4 MB 12 MP
photo-like JPEGs, stored and recorded as the API does it), one task each in turn.
For every task it records CPU time (process, all threads) and wall time of the whole task and of the
media function (`make_image_renditions`) alone; the overhead is the difference: the original's read,
the claim and record transactions with their events, the renditions' puts, the orphan sweep and the
task bookkeeping.

    .venv/bin/python bench/worker_overhead.py [--before REVISION] [--assets 30]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Tasks per contender not measured: the first connections, imports done lazily, caches filled.
WARM_UP = 2


# --- one contender, in a fresh interpreter -----------------------------------------------------------------


def run_child(source: Path) -> None:
    """Render each asset id read from stdin with the worker app of `source`; one JSON line of timings each."""
    sys.path.insert(0, str(source))
    from celery.app.trace import build_tracer

    import workers.app as entry
    import workers.images as images

    entry.app.loader.import_default_modules()
    media = {"cpu": 0.0, "wall": 0.0}
    make = images.make_image_renditions

    def timed_make(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return make(*args, **kwargs)
        finally:
            media["cpu"] += time.process_time() - cpu
            media["wall"] += time.perf_counter() - wall

    images.make_image_renditions = timed_make
    task = entry.app.tasks["images.make_renditions"]
    tracer = build_tracer(task.name, task, app=entry.app, hostname="bench@localhost")
    profiler = cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE") else None
    for index, line in enumerate(sys.stdin):
        asset_id = line.strip()
        if profiler is not None and index == 2:
            profiler.enable()
        media.update(cpu=0.0, wall=0.0)
        task_id = str(uuid.uuid4())
        request = {"id": task_id, "task": task.name, "args": [asset_id], "kwargs": {},
                   "delivery_info": {"routing_key": "images"}, "hostname": "bench@localhost"}  # fmt: skip
        cpu, wall = time.process_time(), time.perf_counter()
        retval, info, _, _ = tracer(task_id, [asset_id], {}, request)
        row = {
            "cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
            "media_cpu": media["cpu"], "media_wall": media["wall"],
            "result": retval if info is None else f"{info.state}: {info.retval!r}",
        }  # fmt: skip
        print(json.dumps(row), flush=True)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(60)


# --- the parent: inputs, contenders, report -------------------------------------------------------------


def upload_assets(settings, count: int, originals: list[bytes]) -> list[str]:
    """`count` image assets stored and recorded as the API records an upload (pending, charged)."""
    from models.asset_lifecycle import create_upload
    from models.db import make_engine, make_sessionmaker
    from models.storage import make_storage
    from models.storage.keys import original_key
    from models.users import ensure_user

    engine = make_engine(settings)
    sessions, storage = make_sessionmaker(engine), make_storage(settings)
    user_id = f"user_bench_{uuid.uuid4().hex[:8]}"
    ids = []
    with sessions.begin() as session:
        ensure_user(session, user_id)
        session.execute(
            __import__("sqlalchemy").text("UPDATE users SET tier = 'pro' WHERE user_id = :u"), {"u": user_id}
        )
    for index in range(count):
        data = originals[index % len(originals)]
        asset_id = uuid.uuid4()
        key = original_key(user_id, asset_id, "jpg")
        storage.put(key, io.BytesIO(data), content_type="image/jpeg")
        with sessions.begin() as session:
            create_upload(session, asset_id=asset_id, user_id=user_id, asset_type="image", storage_key=key,
                          mime_type="image/jpeg", size_bytes=len(data), generation={})  # fmt: skip
        ids.append(str(asset_id))
    engine.dispose()
    return ids


class Contender:
    """A fresh interpreter with the worker app of one tree, rendering one asset at a time on request."""

    def __init__(self, source: Path, env: dict[str, str], log: Path) -> None:
        self.source, self.log = source, log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(source)], env={**env, "PYTHONPATH": str(source)},
            cwd=source, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip

    def render(self, asset_id: str) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{asset_id}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.source}: the contender died; see {self.log.name}")
        row = json.loads(line)
        if row["result"] != "ready":
            raise RuntimeError(f"{self.source}: asset {asset_id} not ready: {row['result']}")
        return row

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


def report(results: dict[str, list[dict]]) -> None:
    print("\nPer image task, median over the tasks (ms):\n")
    print(
        "| contender | tasks | task CPU | media CPU | overhead CPU | task wall | media wall | overhead wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    overheads = {}
    for name, rows in results.items():
        task_cpu, media_cpu, task_wall, media_wall = (
            statistics.median(row[key] for row in rows) * 1000
            for key in ("cpu", "media_cpu", "wall", "media_wall")
        )
        over_cpu = statistics.median(row["cpu"] - row["media_cpu"] for row in rows) * 1000
        over_wall = statistics.median(row["wall"] - row["media_wall"] for row in rows) * 1000
        overheads[name] = over_cpu
        print(f"| {name} | {len(rows)} | {task_cpu:.1f} | {media_cpu:.1f} | **{over_cpu:.1f}** "
              f"| {task_wall:.1f} | {media_wall:.1f} | {over_wall:.1f} |")  # fmt: skip
    names = list(overheads)
    if len(names) == 2 and overheads[names[1]]:
        print(f"\noverhead CPU before / after: {overheads[names[0]] / overheads[names[1]]:.2f}x")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def bench_settings(database_url: str, directory: Path) -> Settings:
    """Development settings on the bench database, local disk under `directory`, a Redis prefix of its own."""
    from core.settings import Settings  # here, not above: a contender's child imports another tree's

    return Settings(
        _env_file=None, environment="development", database_url=database_url,
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_key_prefix=f"{Path(database_url).name}:", ISKRA_DATA_DIR=directory, storage_backend="local",
        signing_secret="bench-signing-secret-long-enough-for-hmac", log_format="json",
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against (default: merge-base with main)")
    parser.add_argument("--assets", type=int, default=30, help="measured tasks per contender")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(Path(args.child))
        return

    from bench.upload_cpu import bench_database, drop_redis_prefix, export, photo_jpeg
    from tests.processes import settings_env

    revision = args.before or _git("merge-base", "HEAD", "main")
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp, bench_database() as url:
        directory = Path(tmp)
        settings = bench_settings(url, directory)
        redis_url, prefix = settings.redis_url, settings.redis_key_prefix
        env = settings_env(settings)
        env.pop("RATE_LIMIT_OVERRIDES", None)
        try:
            originals = [photo_jpeg(seed=seed) for seed in range(4)]
            size = statistics.mean(map(len, originals)) / 1e6
            print(f"originals: {len(originals)} photo-like JPEGs of 12 MP, {size:.1f} MB on average")
            sources = {f"before ({revision[:7]})": export(revision, directory / "before"), "after": ROOT}
            contenders = {
                name: Contender(source, env, directory / f"{index}.log")
                for index, (name, source) in enumerate(sources.items())
            }
            ids = upload_assets(settings, len(sources) * (args.assets + WARM_UP), originals)
            results: dict[str, list[dict]] = {name: [] for name in sources}
            try:
                # One task each in turn, the first of each pair alternating: a busy moment slows both alike.
                for index in range(args.assets + WARM_UP):
                    order = list(contenders) if index % 2 == 0 else list(reversed(contenders))
                    for name in order:
                        row = contenders[name].render(ids.pop())
                        if index >= WARM_UP:
                            results[name].append(row)
            finally:
                for running in contenders.values():
                    running.close()
                if os.environ.get("BENCH_PROFILE"):
                    for index in range(len(sources)):
                        print((directory / f"{index}.log").read_text(), file=sys.stderr)
            report(results)
        finally:
            drop_redis_prefix(redis_url, prefix)


if __name__ == "__main__":
    main()
