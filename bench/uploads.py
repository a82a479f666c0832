"""Upload benchmark: POST /v1/assets (streamed to a bounded spool) against a buffering receiver.

Contenders, side by side on one temporary database, on local disk and on a real SeaweedFS (S3):
- streamed: the API's own `POST /v1/assets` (the body is counted into a spool: 1 MiB in memory, the
  rest on disk; the original is put from the spool);
- buffered: the same checks, quota reservation and storage put, but the file is taken the usual way,
  `request.files["file"].read()`, so the whole file sits in memory, as the original system did.
Each contender gets a fresh API process per file size (Werkzeug's server, one request at a time, warmed up
by one 64 KiB upload through the same route); the client, in this process, streams multipart bodies of
1 MiB and 25 MiB files (a real JPEG header, then padding) over HTTP, one new user per upload, alternating
between the contenders. Reports MiB/s, p50/p99 latency and each API process's peak RSS (VmHWM, reset
after warm-up) above its RSS before the measured uploads.

    .venv/bin/python bench/uploads.py [--small-runs 30] [--large-runs 8] [--no-s3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import redis
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.storage.s3 import S3Storage  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
WEED = Path(sys.executable).parent / "weed"
RUN = uuid.uuid4().hex[:8]
MIB = 1024 * 1024
SIZES = {"1 MiB": MIB, "25 MiB": 25 * MIB}  # 25 MiB: the largest file the free plan accepts
BOUNDARY = "iskrabenchboundary"
CONTENDERS = {"streamed": "/v1/assets", "buffered": "/bench/buffered"}


# -- the API process -------------------------------------------------------------------------------------


def _memory() -> dict[str, int]:
    """This process's resident set now and its high-water mark, in bytes (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {name: int(fields[key].split()[0]) * 1024 for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))}


def _bench_routes(app) -> None:
    from flask import request

    from core.settings import media_limits
    from models.asset_lifecycle import create_upload
    from models.plans import get_plan
    from models.storage.keys import extension_for, original_key
    from models.storage.staging import put_then_record
    from models.users import ensure_user
    from web.auth import bearer_token
    from web.db import db
    from web.services import services
    from web.uploads import FIELD_BYTES, FORM_OVERHEAD_BYTES, vetted_stream

    @app.post("/bench/buffered")
    def buffered_upload():
        identity, storage = services().authenticator.verify(bearer_token() or ""), services().storage
        with db().begin():
            user = ensure_user(db(), identity.user_id, identity.email)
            max_file_bytes = get_plan(db(), user.tier).max_upload_bytes
        request.max_form_memory_size = FIELD_BYTES
        # The same body cap as the streamed route (the app's default is sized for JSON bodies).
        request.max_content_length = max_file_bytes + FORM_OVERHEAD_BYTES
        data = request.files["file"].read()  # the whole file in memory
        sniffed = vetted_stream(io.BytesIO(data), media_limits(services().settings))
        asset_id = uuid.uuid4()
        key = original_key(identity.user_id, asset_id, extension_for(sniffed.mime_type))
        with put_then_record(storage, key, io.BytesIO(data), content_type=sniffed.mime_type) as staged:
            with db().begin():
                asset = create_upload(
                    db(), asset_id=asset_id, user_id=identity.user_id, asset_type=sniffed.kind,
                    storage_key=key, mime_type=sniffed.mime_type, size_bytes=len(data), generation={},
                )  # fmt: skip
            staged.recorded()
        return {"id": str(asset.id), "sizeBytes": asset.size_bytes}, 201

    @app.get("/bench/memory")
    def memory():
        return _memory()

    @app.post("/bench/memory/reset")
    def reset_peak():
        # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
        Path("/proc/self/clear_refs").write_text("5")
        return _memory()


def serve(overrides: str) -> None:
    """Run one API process on a free port and print the port; stops on SIGTERM."""
    import logging

    from werkzeug.serving import make_server

    from web.app import create_app

    settings = Settings(_env_file=None, **json.loads(overrides))
    app = create_app(settings)
    _bench_routes(app)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, app, threaded=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(server.server_port, flush=True)
    server.serve_forever()


# -- the client ------------------------------------------------------------------------------------------


def _jpeg_head() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 80, 40)).save(out, "JPEG", quality=85)
    return out.getvalue()


class MultipartBody(io.RawIOBase):
    """A multipart body carrying one `size`-byte JPEG (a real header, then padding), made as it is read."""

    def __init__(self, size: int) -> None:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        jpeg = _jpeg_head()
        self.parts = [head + jpeg, size - len(jpeg), f"\r\n--{BOUNDARY}--\r\n".encode()]
        self.length = len(head) + size + len(self.parts[2])

    def __len__(self) -> int:  # requests sends Content-Length for a body that has a length
        return self.length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self.parts:
            part = self.parts[0]
            if isinstance(part, int):
                count = min(part, len(buffer))
                buffer[:count] = bytes(count)
                self.parts[0] = part - count
            else:
                count = min(len(part), len(buffer))
                buffer[:count] = part[:count]
                self.parts[0] = part[count:]
            if not self.parts[0]:
                self.parts.pop(0)
            if count:
                return count
        return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def upload_once(http: requests.Session, url: str, settings: Settings, size: int) -> float:
    """Seconds for one upload of a `size`-byte file, by a new user (so rate limits and quota stay away)."""
    token = make_dev_token(settings, f"user_bench_{uuid.uuid4().hex[:12]}")
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    started = time.perf_counter()
    response = http.post(url, data=MultipartBody(size), headers=headers, timeout=120)
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, (response.status_code, response.text[:300])
    assert response.json()["sizeBytes"] == size
    return elapsed


def measure(bases: dict[str, str], settings: Settings, size: int, runs: int) -> dict[str, dict[str, float]]:
    """Both contenders, request by request in alternating order, so a busy moment hits them alike."""
    http = requests.Session()
    idle = {}
    for contender, base in bases.items():
        http.post(f"{base}/bench/memory/reset", timeout=10)
        idle[contender] = http.get(f"{base}/bench/memory", timeout=10).json()["rss"]
    latencies: dict[str, list[float]] = {contender: [] for contender in bases}
    for n in range(runs):
        for contender in list(bases)[:: 1 if n % 2 == 0 else -1]:
            url = f"{bases[contender]}{CONTENDERS[contender]}"
            latencies[contender].append(upload_once(http, url, settings, size))
    rows = {}
    for contender, base in bases.items():
        peak = http.get(f"{base}/bench/memory", timeout=10).json()["peak"]
        taken = latencies[contender]
        rows[contender] = {
            "mib_per_s": size * runs / MIB / sum(taken),
            "p50_ms": percentile(taken, 0.5) * 1000,
            "p99_ms": percentile(taken, 0.99) * 1000,
            "peak_mib": (peak - idle[contender]) / MIB,
        }
    return rows


@contextmanager
def api_process(overrides: dict, path: str) -> Iterator[str]:
    command = [sys.executable, __file__, "--serve", json.dumps(overrides)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        warm = make_dev_token(Settings(_env_file=None, **overrides), "user_bench_warm")
        # Imports, connections and the first spool happen here, out of the measure.
        headers = {
            "Authorization": f"Bearer {warm}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        requests.post(
            f"{base}{path}", data=MultipartBody(64 * 1024), headers=headers, timeout=60
        ).raise_for_status()
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


# -- infrastructure --------------------------------------------------------------------------------------


@contextmanager
def temporary_database() -> Iterator[str]:
    name = f"iskra_bench_{RUN}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER_URL.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def seaweedfs(root: Path) -> Iterator[dict]:
    """The test suite's `weed mini` with one bucket of this run; the S3 settings to use it."""
    from tests.s3server import running_weed

    with running_weed(root) as server:
        s3 = {"storage_backend": "s3", "s3_endpoint_url": server.endpoint_url,
              "s3_bucket": f"iskra-bench-{RUN}", "s3_region": server.region,
              "aws_access_key_id": server.access_key, "aws_secret_access_key": server.secret_key}  # fmt: skip
        S3Storage.from_settings(Settings(_env_file=None, **s3)).ensure_bucket()
        yield s3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small-runs", type=int, default=30)
    parser.add_argument("--large-runs", type=int, default=8)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    runs = {"1 MiB": args.small_runs, "25 MiB": args.large_runs}
    results = []
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iskra-bench-")))
        database_url = stack.enter_context(temporary_database())
        stack.callback(forget_redis_keys)
        common = {"database_url": database_url, "redis_url": REDIS_URL,
                  "redis_key_prefix": f"iskra-bench-{RUN}:", "ISKRA_DATA_DIR": str(root / "data"),
                  "auth_mode": "dev", "log_level": "WARNING",
                  "dev_jwt_secret": "bench-secret-long-enough-for-hs256-signing",
                  "signing_secret": "bench-signing-secret-long-enough"}  # fmt: skip
        backends = {"local": common}
        if not args.no_s3:
            backends["s3"] = {**common, **stack.enter_context(seaweedfs(root))}
        for backend, overrides in backends.items():
            settings = Settings(_env_file=None, **overrides)
            for label, size in SIZES.items():
                # Fresh processes for each size: a peak is never hidden in heap an earlier run left behind.
                with ExitStack() as processes:
                    bases = {
                        contender: processes.enter_context(api_process(overrides, path))
                        for contender, path in CONTENDERS.items()
                    }
                    rows = measure(bases, settings, size, runs[label])
                for contender, row in rows.items():
                    results.append({"backend": backend, "file": label, "contender": contender, **row})
                    print(json.dumps(results[-1]), flush=True)
    report(results, runs)


def forget_redis_keys() -> None:
    """The rate-limit windows and queued rendition tasks of this run (no worker consumes them)."""
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"iskra-bench-{RUN}:*"):
        client.delete(key)


def report(results: list[dict], runs: dict[str, int]) -> None:
    print(f"\nruns per contender: {runs}")
    print("| backend | file | contender | MiB/s | p50 ms | p99 ms | peak RSS above idle |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in results:
        print(f"| {row['backend']} | {row['file']} | {row['contender']} | {row['mib_per_s']:.0f} | "
              f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {row['peak_mib']:.1f} MiB |")  # fmt: skip
    print("\nbuffered / streamed:")
    for backend in dict.fromkeys(row["backend"] for row in results):
        for label in SIZES:
            pair = {r["contender"]: r for r in results if r["backend"] == backend and r["file"] == label}
            streamed, buffered = pair["streamed"], pair["buffered"]
            memory = buffered["peak_mib"] / max(streamed["peak_mib"], 0.1)
            speed = buffered["mib_per_s"] / streamed["mib_per_s"]
            latency = buffered["p50_ms"] / streamed["p50_ms"]
            print(
                f"- {backend}, {label}: peak RSS x{memory:.1f}, throughput x{speed:.2f}, p50 x{latency:.2f}"
            )


if __name__ == "__main__":
    main()
