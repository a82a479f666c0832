"""Memory benchmark: peak resident memory of one image task's media work, before and after a change.

Each input is rendered (`make_image_renditions`: preview, thumbnail, placeholder) once in a fresh
interpreter, and the interpreter's peak RSS (`VmHWM`) is read; the same is done with the code of an
earlier revision (`--before`, default: where this branch left `main`; exported whole with `git archive`
into a temporary folder), so both columns come from one run on the same inputs. Inputs, generated into
a temporary directory: a 10000x10000 16-bit greyscale PNG, a 10000x10000 (100 MP) RGBA PNG, a 100 MP
JPEG, and a 12 MP RGBA PNG.

With `--worker`, the same before/after pair is measured in a real prefork worker instead
(`celery -A workers.app worker -Q images -c 2`, two children, `--pool` to change it, on a
temporary database, Redis and local disk): the worker's main process and its children after start-up
(VmRSS; each child's PSS and its private pages, which are what one more child adds), the peak (VmHWM) and
private pages of the child that rendered a 100 MP JPEG, and the children's private pages again after
`--photos` 12 MP photos. Beside it, a fresh interpreter that only imports the worker app and its tasks
(VmRSS), and a child forked from that interpreter as the pool forks one, whose private pages are read
after a full garbage collection: the copy a child's first full collection makes of the main process's
objects, which a long-lived child meets sooner or later.

    .venv/bin/python bench/memory.py [--before REVISION] [--ceiling-mb 512]
    .venv/bin/python bench/memory.py --worker [--before REVISION] [--photos 30] [--pool 2]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- inputs --------------------------------------------------------------------------------------------


def make_inputs(directory: Path) -> dict[str, Path]:
    """The benchmark's images by label, written once into `directory`."""
    import numpy as np
    from PIL import Image

    paths = {}
    y, x = np.ogrid[0:10_000, 0:10_000]
    grey = ((x * 5 + y * 2) % 65_536).astype(np.uint16)
    paths["16-bit grey PNG 100 MP"] = _save(Image.fromarray(grey), directory / "grey16.png")
    del grey
    rgba = np.empty((10_000, 10_000, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = x % 256, y % 256, (x + y) % 256
    rgba[..., 3] = (x // 40 + y // 40) % 256
    paths["RGBA PNG 100 MP"] = _save(Image.fromarray(rgba, "RGBA"), directory / "rgba100.png")
    paths["RGB JPEG 100 MP"] = _save(Image.fromarray(rgba[..., :3], "RGB"), directory / "rgb100.jpg")
    paths["RGBA PNG 12 MP"] = _save(Image.fromarray(rgba[:3000, :4000], "RGBA"), directory / "rgba12.png")
    return paths


def _save(img, path: Path) -> Path:
    img.save(path, compress_level=1) if path.suffix == ".png" else img.save(path, quality=90)
    return path


# --- one measured run, in a fresh interpreter ------------------------------------------------------------


def _vm(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024  # kB to MiB


def peak_child(source: Path, path: Path) -> None:
    """Print the peak RSS after the imports, then after rendering `path` with the code in `source`."""
    sys.path.insert(0, str(source))
    from workers.media.images import make_image_renditions
    from workers.media.limits import MediaLimits
    from workers.media.sniff import SNIFF_BYTES, sniff

    imported = _vm("VmHWM")
    with path.open("rb") as f:
        sniffed = sniff(f.read(SNIFF_BYTES))
        f.seek(0)
        make_image_renditions(f, sniffed, MediaLimits())
    print(imported, _vm("VmHWM"))


def peak_mb(source: Path, path: Path) -> tuple[float, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--peak", str(source), str(path)], capture_output=True, text=True
    )
    if output.returncode:
        raise RuntimeError(f"{source} on {path.name}: {output.stderr[-2000:]}")
    imported, peak = output.stdout.split()[-2:]
    return float(imported), float(peak)


def export(revision: str, directory: Path) -> Path:
    """The tree of `revision`, extracted into `directory` (first on the path, before the editable install)."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
    directory.mkdir()
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


# --- a real worker ------------------------------------------------------------------------------------------


def _mib(path: str, field: str) -> float:
    text = Path(path).read_text()
    return int(text.split(f"{field}:")[1].split()[0]) / 1024


def process_memory(pid: int | str) -> dict[str, float]:
    """VmRSS and VmHWM, and from smaps_rollup PSS and the private (unshared) resident pages, in MiB."""
    rollup = f"/proc/{pid}/smaps_rollup"
    return {
        "rss": _mib(f"/proc/{pid}/status", "VmRSS"),
        "hwm": _mib(f"/proc/{pid}/status", "VmHWM"),
        "pss": _mib(rollup, "Pss"),
        "private": _mib(rollup, "Private_Clean") + _mib(rollup, "Private_Dirty"),
    }


def imports_child(source: Path) -> None:
    """Print VmRSS after importing the worker app of `source` and its tasks (a fresh interpreter), then
    the private memory of a child forked from it as the prefork pool forks one (the signal the pool sends
    before each fork first), once a full garbage collection has run in the child."""
    sys.path.insert(0, str(source))
    from celery.signals import worker_before_create_process

    import workers.app as entry

    entry.app.loader.import_default_modules()
    print(_vm("VmRSS"), flush=True)
    worker_before_create_process.send(sender=None)
    child = os.fork()
    if child == 0:
        gc.collect()
        print(process_memory("self")["private"], flush=True)
        os._exit(0)
    os.waitpid(child, 0)


def worker_memory(
    source: Path, env: dict[str, str], jpeg_id: str, photo_ids: list[str], settings, log: Path, pool: int
) -> dict[str, str]:
    """Memory of a real images worker running the code in `source` with `pool` children: idle, after one
    of them rendered the 100 MP JPEG `jpeg_id`, then after the ordinary photos `photo_ids`."""
    from core import taskqueue
    from tests.processes import BIN, wait_until
    from tests.workers.rendition_support import asset

    env = {**env, "PYTHONPATH": str(source)}
    imported = subprocess.run(
        [sys.executable, __file__, "--imports", str(source)],
        env=env,
        cwd=source,
        capture_output=True,
        text=True,
    )
    if imported.returncode:
        raise RuntimeError(imported.stderr[-2000:])
    name = f"bench-{time.monotonic_ns()}@%h"
    command = [str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", "images", "-c", str(pool), "-E",
               "--without-mingle", "--without-gossip", "-l", "warning", "-n", name]  # fmt: skip
    from models.db import make_engine, make_sessionmaker

    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    client = taskqueue.make_client(settings)

    def render(asset_ids: list[str]) -> None:
        for asset_id in asset_ids:
            taskqueue.send(client, taskqueue.MAKE_IMAGE_RENDITIONS, asset_id)
        wait_until(
            lambda: all(asset(sessions, a).status in ("ready", "failed") for a in asset_ids),
            timeout=300,
            interval=0.2,
        )
        failed = [a for a in asset_ids if asset(sessions, a).status != "ready"]
        if failed:
            raise RuntimeError(f"{len(failed)} assets failed in {source}: {asset(sessions, failed[0]).error}")

    with log.open("wb") as out:
        worker = subprocess.Popen(command, env=env, cwd=source, stdout=out, stderr=subprocess.STDOUT)
        try:
            listed = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
            wait_until(lambda: len(listed.read_text().split()) == pool, timeout=60)
            time.sleep(3)  # settled: the children have run their start-up hooks
            children = sorted(int(pid) for pid in listed.read_text().split())  # in the order of their forks
            idle, main = [process_memory(child) for child in children], process_memory(worker.pid)
            render([jpeg_id])
            busy = [process_memory(child) for child in children]
            rendered = max(range(pool), key=lambda i: busy[i]["hwm"] - idle[i]["hwm"])
            render(photo_ids)
            if sorted(int(pid) for pid in listed.read_text().split()) != children:
                raise RuntimeError("a pool child was replaced while it was measured")
            steady = [process_memory(child) for child in children]
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            engine.dispose()

    def each(readings: list[dict[str, float]], field: str) -> str:
        return " / ".join(f"{reading[field]:.0f}" for reading in readings)

    return {
        "imports only (fresh interpreter) VmRSS": f"{float(imported.stdout.split()[-2]):.0f}",
        "**a fork of it, private after a full collection**": f"{float(imported.stdout.split()[-1]):.0f}",
        "main process VmRSS": f"{main['rss']:.0f}",
        "pool children VmRSS after start": each(idle, "rss"),
        "pool children PSS after start": each(idle, "pss"),
        "**pool children private after start**": each(idle, "private"),
        "**peak (VmHWM) of the child that rendered the 100 MP JPEG**": f"{busy[rendered]['hwm']:.0f}",
        "**that child's private after it**": f"{busy[rendered]['private']:.0f}",
        f"**pool children private after {len(photo_ids)} more 12 MP photos**": each(steady, "private"),
        "pool children PSS then": each(steady, "pss"),
    }


def measure_workers(revision: str, directory: Path, photos: int, pool: int) -> None:
    from bench.upload_cpu import bench_database, drop_redis_prefix, photo_jpeg
    from bench.worker_overhead import upload_assets
    from core.settings import Settings
    from tests.processes import settings_env

    jpeg = directory / "rgb100.jpg"
    import numpy as np
    from PIL import Image

    y, x = np.ogrid[0:10_000, 0:10_000]
    rgb = np.empty((10_000, 10_000, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = x % 256, y % 256, (x + y) % 256
    _save(Image.fromarray(rgb, "RGB"), jpeg)
    del rgb
    photo = photo_jpeg()
    before = export(revision, directory / "before")
    with bench_database() as url:
        prefix = f"{Path(url).name}:"
        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        settings = Settings(
            _env_file=None, environment="development", database_url=url, redis_url=redis_url,
            redis_key_prefix=prefix, ISKRA_DATA_DIR=directory / "data", storage_backend="local",
            signing_secret="bench-signing-secret-long-enough-for-hmac", log_format="json",
        )  # fmt: skip
        env = settings_env(settings)
        try:
            columns = {}
            for name, source in ((f"before ({revision[:7]})", before), ("after", ROOT)):
                [jpeg_id] = upload_assets(settings, 1, [jpeg.read_bytes()])
                photo_ids = upload_assets(settings, photos, [photo])
                log = directory / f"{name[:6]}.log"
                columns[name] = worker_memory(source, env, jpeg_id, photo_ids, settings, log, pool)
        finally:
            drop_redis_prefix(redis_url, prefix)
    names = list(columns)
    print(f"\nA real images worker (-c {pool}), MiB; children in the order they were forked. In bold what")
    print("one more child costs the machine: its private pages (RSS and PSS count the pages it shares).\n")
    print(f"| | {' | '.join(names)} |")
    print("|---|" + "---:|" * len(names))
    for row in columns[names[0]]:
        print(f"| {row} | {' | '.join(columns[name][row] for name in names)} |")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against (default: merge-base with main)")
    parser.add_argument("--ceiling-mb", type=float, default=512.0)
    parser.add_argument("--worker", action="store_true", help="measure a real prefork worker instead")
    parser.add_argument("--photos", type=int, default=30, help="--worker: 12 MP photos after the 100 MP JPEG")
    parser.add_argument("--pool", type=int, default=2, help="--worker: pool children")
    parser.add_argument("--peak", nargs=2, metavar=("SOURCE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--imports", metavar="SOURCE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        peak_child(Path(args.peak[0]), Path(args.peak[1]))
        return
    if args.imports:
        imports_child(Path(args.imports))
        return
    started = time.perf_counter()
    if args.worker:
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            revision = args.before or _git("merge-base", "HEAD", "main")
            measure_workers(revision, Path(tmp), args.photos, args.pool)
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
        return
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        directory = Path(tmp)
        inputs = make_inputs(directory)
        print(f"inputs made in {time.perf_counter() - started:.0f} s")
        revision = args.before or _git("merge-base", "HEAD", "main")
        before = export(revision, directory / "before")
        print("\nPeak RSS (VmHWM, MiB) of a fresh process rendering each input once:\n")
        print(f"| input | file | imports only | before ({revision[:7]}) | after | after / ceiling |")
        print("|---|---|---|---|---|---|")
        for label, path in inputs.items():
            imported, after = peak_mb(ROOT, path)
            try:
                _, earlier = peak_mb(before, path)
                earlier_cell = f"{earlier:.0f}"
            except RuntimeError as error:
                earlier_cell = f"failed ({str(error).strip().splitlines()[-1][:40]})"
            size = path.stat().st_size / 1024 / 1024
            print(
                f"| {label} | {size:.1f} MiB | {imported:.0f} | {earlier_cell} | {after:.0f} "
                f"| {after / args.ceiling_mb:.0%} |"
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
