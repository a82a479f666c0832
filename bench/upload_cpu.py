"""API CPU per upload: the API process's CPU seconds for each 4 MB JPEG `POST /v1/assets`, before and after.

Two gunicorn APIs run side by side on one temporary database, one Redis (a per-run key prefix) and local
disk: this tree and an earlier revision (`--before`, default: where this branch left `main`), exported
whole with `git archive`. Each serves with the repository's own gunicorn.conf.py (gthread), one worker.
A client that costs little CPU (one keep-alive `http.client` connection, the multipart body built once)
sends `--uploads` uploads to each in turn, a fresh user per contender and round, for `--rounds` rounds;
the contenders alternate which goes first. The figure is the CPU time (user + system, from /proc) of the
API's processes (master and worker) over the measured uploads divided by their number; the client and
the database are not counted. Nothing consumes the queued tasks: the API's share is measured alone.

    .venv/bin/python bench/upload_cpu.py [--before REVISION] [--uploads 10] [--rounds 4]
    .venv/bin/python bench/upload_cpu.py --profile    # one pyinstrument profile of this tree, in process
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import psycopg
import redis
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from tests.browser.stack import free_port  # noqa: E402
from tests.processes import BIN, settings_env, wait_until  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BOUNDARY = "----iskrabenchboundary7d1f"
TICK = os.sysconf("SC_CLK_TCK")
UNLIMITED = {"perMinute": None, "perHour": None, "perDay": None}


def photo_jpeg(target_bytes: int = 4_000_000, seed: int = 17) -> bytes:
    """A 12 MP photo-like JPEG (smooth colour, sensor grain) at the quality nearest `target_bytes`."""
    rng = np.random.default_rng(seed)
    height, width = 3000, 4000
    y, x = np.ogrid[0:height, 0:width]
    base = np.empty((height, width, 3), dtype=np.float32)
    base[..., 0], base[..., 1] = x * 255 / width, y * 255 / height
    base[..., 2] = (x + y) * 128 / (width + height)
    base += rng.uniform(-40, 40, 3)
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    made = []
    for quality in (70, 75, 80, 85, 88, 90, 92, 94, 96):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        made.append(out.getvalue())
    return min(made, key=lambda jpeg: abs(len(jpeg) - target_bytes))


def multipart(jpeg: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + jpeg + f"\r\n--{BOUNDARY}--\r\n".encode()


# --- the API processes ------------------------------------------------------------------------------------


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    """Delete the keys a run left under its own Redis prefix."""
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


def export(revision: str, directory: Path) -> Path:
    """The tree of `revision`, extracted into `directory` (first on the path, before the editable install)."""
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
    directory.mkdir()
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


def _answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/livez")
        return connection.getresponse().status == 200
    except OSError:
        return False


@contextmanager
def api(source: Path, settings: Settings, log: Path) -> Iterator[int]:
    """A gunicorn API (one gthread worker) running the code in `source`; yields its port."""
    port = free_port()
    env = {
        **settings_env(settings),
        # settings_env writes a dict as Python, not JSON
        "RATE_LIMIT_OVERRIDES": json.dumps(settings.rate_limit_overrides),
        "PYTHONPATH": str(source),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "4",
    }
    command = [str(BIN / "gunicorn"), "-c", str(source / "gunicorn.conf.py"), "--chdir", str(source),
               "--bind", f"127.0.0.1:{port}", "web.wsgi:app_from_environment()"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=source, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until(lambda: process.poll() is not None or _answers(port), timeout=60)
                if process.poll() is not None:
                    raise AssertionError
            except AssertionError:
                raise RuntimeError(f"the API did not start: {log.read_text()[-3000:]}") from None
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


def tree_pids(port: int) -> list[int]:
    """The gunicorn master serving `port` and its workers."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline:
            master = int(entry.name)
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            return [master, *map(int, children)]
    raise RuntimeError(f"no gunicorn on port {port}")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


class Client:
    """One keep-alive connection; uploads a prepared multipart body as a given user."""

    def __init__(self, port: int, settings: Settings) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.settings = settings

    def upload(self, user: str, body: bytes) -> None:
        headers = {
            "Authorization": f"Bearer {make_dev_token(self.settings, user)}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        self.connection.request("POST", "/v1/assets", body=body, headers=headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 201:
            raise RuntimeError(f"upload answered {response.status}: {answer[:300]!r}")


def measure(ports: dict[str, int], settings: Settings, body: bytes, small: bytes, uploads: int, rounds: int):
    clients = {name: Client(port, settings) for name, port in ports.items()}
    pids = {name: tree_pids(port) for name, port in ports.items()}
    results: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in ports}
    for name, client in clients.items():  # warm-up: imports, pools, the first user's row
        for _ in range(3):
            client.upload(f"user_warm_{name}", body)
    for round_ in range(rounds):
        order = list(ports) if round_ % 2 == 0 else list(reversed(ports))
        for name in order:
            user = f"user_{name}_{round_}_{uuid.uuid4().hex[:6]}"
            clients[name].upload(user, small)  # the user's first request creates its row: not measured
            cpu, started = cpu_seconds(pids[name]), time.perf_counter()
            for _ in range(uploads):
                clients[name].upload(user, body)
            results[name]["wall"].append((time.perf_counter() - started) / uploads)
            results[name]["cpu"].append((cpu_seconds(pids[name]) - cpu) / uploads)
    return results


def report(results: dict[str, dict[str, list[float]]], size: int, uploads: int, rounds: int) -> None:
    print(
        f"\nAPI CPU per {size / 1e6:.1f} MB JPEG upload, {rounds} rounds of {uploads} uploads per contender"
    )
    print("| contender | CPU ms/upload (median of rounds) | min | max | wall ms/upload (median) |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        cpu = [v * 1000 for v in values["cpu"]]
        print(f"| {name} | {statistics.median(cpu):.1f} | {min(cpu):.1f} | {max(cpu):.1f} "
              f"| {statistics.median(values['wall']) * 1000:.1f} |")  # fmt: skip
    names = list(results)
    if len(names) == 2:
        before, after = (statistics.median(results[n]["cpu"]) for n in names)
        print(f"\nbefore / after: {before / after:.2f}x less API CPU per upload")


# --- profile ------------------------------------------------------------------------------------------------


def profile(settings: Settings, body: bytes, uploads: int) -> None:
    """A pyinstrument profile of `uploads` uploads through this tree's WSGI app, in this process."""
    from pyinstrument import Profiler

    from web.app import create_app

    client = create_app(settings).test_client()
    headers = {"Authorization": f"Bearer {make_dev_token(settings, 'user_profile')}",
               "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}  # fmt: skip

    def upload() -> None:
        response = client.post("/v1/assets", data=body, headers=headers)
        assert response.status_code == 201, response.text

    for _ in range(3):
        upload()
    profiler = Profiler(interval=0.0005)
    cpu = time.process_time()
    with profiler:
        for _ in range(uploads):
            upload()
    cpu = (time.process_time() - cpu) / uploads
    print(profiler.output_text(unicode=False, color=False))
    print(f"in-process CPU per upload, client and profiler included: {cpu * 1000:.1f} ms")


# --- set-up -------------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def bench_database() -> Iterator[str]:
    name = f"iskra_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = SERVER_URL.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against (default: merge-base with main)")
    parser.add_argument("--uploads", type=int, default=10, help="measured uploads per contender and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="profile this tree in process instead")
    args = parser.parse_args()
    body = multipart(photo_jpeg())
    tiny = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(tiny, "JPEG")
    small = multipart(tiny.getvalue())
    temp = tempfile.TemporaryDirectory(prefix="bench-upload-cpu-")
    with temp as tmp, bench_database() as url, ExitStack() as stack:
        directory = Path(tmp)
        prefix = f"{Path(url).name}:"
        settings = Settings(
            _env_file=None, environment="development", database_url=url, redis_url=REDIS_URL,
            redis_key_prefix=prefix, ISKRA_DATA_DIR=directory, storage_backend="local", auth_mode="dev",
            dev_jwt_secret="bench-secret-long-enough-for-hs256", log_format="json",
            signing_secret="bench-signing-secret-long-enough-for-hmac",
            rate_limit_overrides={"default": {"upload": UNLIMITED}},
        )  # fmt: skip
        try:
            if args.profile:
                profile(settings, body, args.uploads)
                return
            revision = args.before or _git("merge-base", "HEAD", "main")
            sources = {f"before ({revision[:7]})": export(revision, directory / "before"), "after": ROOT}
            ports = {
                name: stack.enter_context(api(source, settings, directory / f"api-{index}.log"))
                for index, (name, source) in enumerate(sources.items())
            }
            results = measure(ports, settings, body, small, args.uploads, args.rounds)
            report(results, len(body), args.uploads, args.rounds)
        finally:
            stack.close()
            drop_redis_prefix(REDIS_URL, prefix)


if __name__ == "__main__":
    main()
