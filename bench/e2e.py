"""End to end: uploads to `ready` on the real stack, against thumbor making the same renditions.

One command starts everything on 127.0.0.1 and stops it again:
- a private PostgreSQL cluster (the system's `initdb`/`postgres`, a fresh database per storage backend)
  and a private `redis-server` (broker and cache), so that their CPU is this run's alone;
- the API (the Procfile's `web` line: gunicorn per gunicorn.conf.py) and the images worker (the
  Procfile's `worker-images` line), on local disk, then on a real S3-compatible server (`weed mini`);
- thumbor from PyPI in its own venv (`.bench-venvs/thumbor`, made on first use), `--processes 2`, its
  file loader on the same files, asked for the same 1600 px and 400 px WebP renditions (two requests per
  asset); once as shipped and once with a four-line engine that passes our WebP method (2), which
  thumbor's configuration cannot.

The inputs are 50 photo-like JPEGs (40 x 12 MP, 10 x 24 MP, quality 90; `thumbnails.photo`, seeded, so
the same bytes on every machine), cached in `bench/.cache/e2e/`. A client that costs little CPU drives
both: multipart bodies built before the clock starts, sent over keep-alive `http.client` connections
from `--concurrency` threads. For ours the clock runs from the first upload to the moment a status poll
(one count on the database every 20 ms) sees the last asset `ready`; for thumbor from the first
request to the last response. CPU seconds per asset come from /proc (user + system of each process tree,
with reaped children) before and after: API (gunicorn master + workers), images worker (master + pool
children), broker (redis-server), database (postmaster + backends, the poll's own backend taken out),
S3 (weed), thumbor (master + children) and the client itself.

    .venv/bin/python bench/e2e.py [--uploads 50] [--concurrency 4] [--no-s3] [--no-thumbor] [--write-results]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# The children get the environment this process started with, not what the imports below set.
BASE_ENV = dict(os.environ)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import psycopg  # noqa: E402
from PIL import Image  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from thumbnails import photo  # noqa: E402

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.storage.s3 import S3Storage  # noqa: E402
from tests.s3server import running_weed  # noqa: E402
from web.auth import make_dev_token  # noqa: E402
from workers.media.images import PREVIEW_SIDE, THUMBNAIL_SIDE  # noqa: E402
from workers.media.webp import METHOD, QUALITY  # noqa: E402

BIN = Path(sys.executable).parent
CACHE = ROOT / "bench" / ".cache" / "e2e"
THUMBOR_VENV = ROOT / ".bench-venvs" / "thumbor"
RESULTS = ROOT / "bench" / "RESULTS.md"
MARKERS = ("<!-- e2e:last-run -->", "<!-- /e2e:last-run -->")
# 40 x 12 MP and 10 x 24 MP, the 24 MP ones spread through the upload order (every fifth).
INPUTS = [(6000, 4000) if i % 5 == 4 else (4000, 3000) for i in range(50)]
USERS = 5
WARM_UPS = USERS  # one upload by each user before the clock: their rows exist when it starts
JWT_SECRET = "e2e-bench-dev-jwt-secret-long-enough-for-hs256"
SIGNING_SECRET = "e2e-bench-signing-secret-long-enough-for-hmac"
UNLIMITED = {"perMinute": None, "perHour": None, "perDay": None}
POLL_SECONDS = 0.02


# --- inputs --------------------------------------------------------------------------------------------


def cached_photo(name: str, width: int, height: int, seed: int, grain: float = 10.0) -> Path:
    path = CACHE / name
    if not path.exists():
        partial = path.with_suffix(".partial")
        photo(width, height, seed=seed, grain=grain).save(partial, "JPEG", quality=90)
        partial.rename(path)
    return path


def inputs() -> tuple[list[Path], Path, Path, str]:
    """The 50 photos, a small warm-up photo and a 100 MP JPEG (cached), and a digest of all their bytes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    paths = [cached_photo(f"{i:02d}-{w}x{h}.jpg", w, h, seed=1000 + i) for i, (w, h) in enumerate(INPUTS)]
    warm = cached_photo("warm-1600x1200.jpg", 1600, 1200, seed=999)
    huge = cached_photo("huge-10000x10000.jpg", 10_000, 10_000, seed=7, grain=4)
    digest = hashlib.sha256()
    for path in [*paths, warm, huge]:
        digest.update(path.read_bytes())
    return paths, warm, huge, digest.hexdigest()[:16]


def multipart(path: Path) -> tuple[bytes, str]:
    """A `POST /v1/assets` body with `path` as its `file` part, and its content type."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


# --- processes -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


@contextmanager
def process(
    command: list[str], log: Path, env: dict[str, str] | None = None, stop: int = signal.SIGTERM
) -> Iterator[subprocess.Popen]:
    """`command` in a session of its own for the block's duration: `stop`, then SIGKILL to what is left."""
    with log.open("wb") as out:
        child = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        yield child
    finally:
        child.send_signal(stop)
        try:
            child.wait(timeout=40)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        with suppress(ProcessLookupError):  # children the leader left behind (its session's group)
            os.killpg(child.pid, signal.SIGKILL)


def pg_bin() -> Path:
    configured = os.environ.get("BENCH_PG_BIN")
    if configured:
        return Path(configured)
    output = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
    return Path(output.strip())


def admin_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@contextmanager
def private_postgres(work: Path) -> Iterator[tuple[int, int]]:
    """A PostgreSQL cluster of this run on 127.0.0.1 (the system's binaries): (postmaster pid, port)."""
    data = Path(tempfile.mkdtemp(prefix="iskra-e2e-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(data, "postgres", "postgres")
        as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
    try:
        subprocess.run([*as_postgres, str(pg_bin() / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], capture_output=True, check=True)  # fmt: skip
        port = free_port()
        command = [*as_postgres, str(pg_bin() / "postgres"), "-D", str(data), "-p", str(port), "-k",
                   str(data), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"]  # fmt: skip
        with process(command, work / "postgres.log", stop=signal.SIGINT) as server:  # SIGINT: fast shutdown
            wait_for(lambda: psycopg.connect(admin_url(port), connect_timeout=1).close() is None, "postgres")
            yield server.pid, port
    finally:
        shutil.rmtree(data, ignore_errors=True)


@contextmanager
def private_redis(work: Path) -> Iterator[tuple[int, int]]:
    """A redis-server of this run on 127.0.0.1, no persistence: (pid, port)."""
    import redis

    binary = Path("/usr/bin/redis-server")
    port = free_port()
    command = [str(binary if binary.exists() else "redis-server"), "--port", str(port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", str(work)]  # fmt: skip
    with process(command, work / "redis.log") as server:
        wait_for(redis.Redis(port=port).ping, "redis-server")
        yield server.pid, port


def procfile_line(name: str) -> str:
    """A Procfile entry as written there, bound to 127.0.0.1 instead of every address."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip().replace("0.0.0.0:", "127.0.0.1:")
    raise KeyError(name)


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its descendants, with the children they have reaped."""
    total = 0.0
    for proc in tree(pid):
        with suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, every process) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def peak_mb(proc: psutil.Process) -> float:
    status = Path(f"/proc/{proc.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def reset_peaks(procs: list[psutil.Process]) -> None:
    for proc in procs:
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")


def status_of(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


# --- the client ----------------------------------------------------------------------------------------

Request = tuple[str, str, bytes | None, dict[str, str]]


@dataclass
class Drive:
    """What a client run saw: answers by status, the bodies when asked for, connection retries."""

    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(port: int, jobs: list[list[Request]], concurrency: int, keep: bool = False) -> Drive:
    """Each job's requests in order on one of `concurrency` keep-alive connections; jobs taken in order."""
    todo: queue.SimpleQueue[list[Request]] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    seen = Drive()

    def send(conn: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
        method, path, body, headers = request
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    def work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                break
            for request in job:
                try:
                    status, body = send(conn, request)
                except (http.client.RemoteDisconnected, ConnectionError):
                    conn.close()  # the server closed an idle keep-alive connection: send again on a new one
                    with seen.lock:
                        seen.retries += 1
                    status, body = send(conn, request)
                with seen.lock:
                    seen.statuses[status] = seen.statuses.get(status, 0) + 1
                    if keep:
                        seen.bodies.append(body)
        conn.close()

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


# --- contenders ----------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    assets: int
    seconds: float
    cpu: dict[str, float]  # CPU seconds during the run, by process group
    failed: int
    others: float  # CPU seconds the rest of the machine spent during the run
    notes: dict[str, str] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)  # assets/s of each round


@dataclass
class Services:
    """What the contenders share: the run's PostgreSQL and Redis, inputs and client settings."""

    work: Path
    pg: tuple[int, int]
    redis: tuple[int, int]
    bodies: list[tuple[bytes, str]]
    files: list[Path]
    warm: Path
    huge: Path | None
    concurrency: int


def ours(services: Services, label: str, weed_root: Path | None) -> Result:
    """Upload every file through the API; the images worker makes the renditions; wait for `ready`.

    On local disk, or (`weed_root`) on a `weed mini` started for this run and stopped after it.
    """
    with ExitStack() as stack:
        s3, s3_pid = {}, None
        if weed_root is not None:
            weed_root.mkdir()
            server = stack.enter_context(running_weed(weed_root))
            s3, s3_pid = s3_env(server), weed_pid(server)
        return _ours(services, label, s3, s3_pid)


def _ours(services: Services, label: str, s3: dict[str, str], s3_pid: int | None) -> Result:
    print(f"running ours on {label} ...", flush=True)
    backend = "s3" if s3 else "local"
    pg_pid, pg_port = services.pg
    tag = uuid.uuid4().hex[:6]
    database = f"iskra_e2e_{backend}_{tag}"
    with psycopg.connect(admin_url(pg_port), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/{database}"
    migrate.upgrade(url)
    data = services.work / f"{backend}-{tag}"
    (data / "metrics").mkdir(parents=True)
    port = free_port()
    env = {
        **BASE_ENV, "PATH": f"{BIN}{os.pathsep}{BASE_ENV.get('PATH', '')}", "PORT": str(port),
        "ENVIRONMENT": "development", "DATABASE_URL": url,
        "REDIS_URL": f"redis://127.0.0.1:{services.redis[1]}/0", "REDIS_KEY_PREFIX": f"e2e-{backend}:",
        "AUTH_MODE": "dev", "DEV_JWT_SECRET": JWT_SECRET, "SIGNING_SECRET": SIGNING_SECRET,
        "ISKRA_DATA_DIR": str(data), "PROMETHEUS_MULTIPROC_DIR": str(data / "metrics"),
        "LOG_LEVEL": "WARNING", "STORAGE_BACKEND": "s3" if s3 else "local",
        "RATE_LIMIT_OVERRIDES": json.dumps({"default": {"upload": UNLIMITED}}), **s3,
    }  # fmt: skip
    settings = Settings(_env_file=None, auth_mode="dev", dev_jwt_secret=SecretStr(JWT_SECRET))
    tokens = [make_dev_token(settings, f"user_e2e_{backend}_{i}") for i in range(USERS)]

    def uploads(bodies: list[tuple[bytes, str]]) -> list[list[Request]]:
        """One job per body, one request each, the users taking turns."""
        jobs: list[list[Request]] = []
        for i, (body, kind) in enumerate(bodies):
            headers = {"Authorization": f"Bearer {tokens[i % USERS]}", "Content-Type": kind}
            jobs.append([("POST", "/v1/assets", body, headers)])
        return jobs

    with ExitStack() as stack:
        api = stack.enter_context(process(["sh", "-c", procfile_line("web")], data / "api.log", env))
        worker = stack.enter_context(
            process(["sh", "-c", procfile_line("worker-images")], data / "worker.log", env)
        )
        wait_for(lambda: status_of(port, "/livez") == 200, "the API")
        wait_for(lambda: len(tree(worker.pid)) > 1, "the images worker's pool")
        time.sleep(2)  # let the pool children finish their start-up before reading their memory
        children = tree(worker.pid)[1:]
        notes = {
            "images child RSS, idle (MB)": f"{max(p.memory_info().rss for p in children) / 2**20:.0f}",
            "images child USS, idle (MB)": f"{max(p.memory_full_info().uss for p in children) / 2**20:.0f}",
        }
        poll = stack.enter_context(psycopg.connect(url.replace("+psycopg", ""), autocommit=True))
        poller = psutil.Process(poll.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        drive(port, uploads([multipart(services.warm)] * WARM_UPS), services.concurrency)
        ready, _ = wait_finished(poll, WARM_UPS, timeout=120)
        assert ready == WARM_UPS, f"a warm-up upload failed on {backend}"

        groups = {
            "API": api.pid,
            "images worker": worker.pid,
            "broker": services.redis[0],
            "database": pg_pid,
        }
        if s3_pid is not None:
            groups["S3"] = s3_pid
        children = tree(worker.pid)[1:]
        reset_peaks(children)
        jobs = uploads(services.bodies)
        before = {name: tree_cpu(pid) for name, pid in groups.items()}
        polled_before, client_before, busy = sum(poller.cpu_times()[:2]), own_cpu(), machine_busy()
        started = time.perf_counter()
        seen = drive(port, jobs, services.concurrency)
        uploaded = time.perf_counter() - started
        ready, failed = wait_finished(poll, WARM_UPS + len(jobs), timeout=60 + 10 * len(jobs))
        seconds = time.perf_counter() - started
        cpu = {name: tree_cpu(pid) - before[name] for name, pid in groups.items()}
        polled = sum(poller.cpu_times()[:2]) - polled_before
        cpu["database"] -= polled  # the status poll is the client's
        cpu["client"] = own_cpu() - client_before + polled
        others = machine_busy() - busy - sum(cpu.values())
        assert seen.statuses == {201: len(jobs)}, f"uploads answered {seen.statuses}"
        live = [p for p in children if p.is_running()]
        notes["images child peak RSS over the run (MB)"] = f"{max(map(peak_mb, live)):.0f}" if live else "-"
        notes["uploads all answered after (s)"] = f"{uploaded:.2f}"
        notes["client reconnects"] = str(seen.retries)
        if services.huge is not None:
            children = tree(worker.pid)[1:]
            reset_peaks(children)
            drive(port, uploads([multipart(services.huge)]), 1)
            _, huge_failed = wait_finished(poll, WARM_UPS + len(jobs) + 1, timeout=180)
            assert huge_failed == failed, "the 100 MP JPEG failed"
            peak = max(peak_mb(p) for p in tree(worker.pid)[1:])
            notes["images child peak RSS, one 100 MP JPEG (MB)"] = f"{peak:.0f}"
    return Result(f"ours, {label}", len(jobs), seconds, cpu, failed, others, notes, [len(jobs) / seconds])


def wait_finished(poll: psycopg.Connection, total: int, timeout: float) -> tuple[int, int]:
    """Poll until `total` assets are ready or failed: (ready, failed)."""
    query = "SELECT count(*) FILTER (WHERE status = 'ready'), count(*) FILTER (WHERE status = 'failed')"
    query += " FROM assets"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, failed = poll.execute(query).fetchone()  # type: ignore[misc]
        if ready + failed >= total:
            return ready, failed
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{total} assets not finished within {timeout} s")


def s3_env(server) -> dict[str, str]:
    env = {"S3_ENDPOINT_URL": server.endpoint_url, "S3_BUCKET": "e2e", "S3_REGION": server.region,
           "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}  # fmt: skip
    settings = Settings(
        _env_file=None, storage_backend="s3", s3_endpoint_url=server.endpoint_url, s3_bucket="e2e",
        s3_region=server.region, aws_access_key_id=server.access_key,
        aws_secret_access_key=SecretStr(server.secret_key),
    )  # fmt: skip
    S3Storage.from_settings(settings).ensure_bucket()
    return env


def weed_pid(server) -> int:
    port = server.endpoint_url.rsplit(":", 1)[1]
    for child in psutil.Process().children():
        if "weed" in child.name() and f"-s3.port={port}" in child.cmdline():
            return child.pid
    raise RuntimeError("weed not found among this process's children")


# --- thumbor -------------------------------------------------------------------------------------------

THUMBOR_CONF = """\
LOADER = "thumbor.loaders.file_loader"
FILE_LOADER_ROOT_PATH = {root!r}
STORAGE = "thumbor.storages.no_storage"
RESULT_STORAGE = None
ENGINE = {engine!r}
QUALITY = {quality}
MAX_PIXELS = {max_pixels}
WEBP_QUALITY = {quality}
RESPECT_ORIENTATION = True
PRESERVE_EXIF_INFO = False
ALLOW_UNSAFE_URL = True
DETECTORS = []
"""

# thumbor's PIL engine saves WebP with Pillow's default method (4) and no setting changes it; this engine
# differs only in passing ours.
METHOD_ENGINE = f"""\
from io import BytesIO

from thumbor.engines.pil import Engine as PilEngine


class Engine(PilEngine):
    def read(self, extension=None, quality=None):
        if (extension or self.extension) == ".webp" and self.image.mode in ("RGB", "RGBA") and quality != 100:
            out = BytesIO()
            self.image.save(out, "WEBP", quality=quality or self.context.config.QUALITY, method={METHOD})
            return out.getvalue()
        return super().read(extension, quality)
"""


def thumbor_venv(version: str) -> Path:
    """thumbor `version` from PyPI in its own venv (made once; `.bench-venvs/` is not committed)."""
    marker = THUMBOR_VENV / f".installed-thumbor-{version}"
    if not marker.exists():
        print(f"installing thumbor {version} into {THUMBOR_VENV.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(THUMBOR_VENV)], check=True)
        pip = [
            str(THUMBOR_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        subprocess.run([*pip, f"thumbor=={version}"], check=True)
        marker.touch()
    return THUMBOR_VENV


def renditions_of(name: str) -> list[Request]:
    return [
        ("GET", f"/unsafe/fit-in/{side}x{side}/filters:format(webp):quality({QUALITY})/{name}", None, {})
        for side in (PREVIEW_SIDE, THUMBNAIL_SIDE)
    ]


def thumbor(services: Services, venv: Path, label: str, engine: str) -> Result:
    """Both renditions of every file from thumbor `--processes 2`, two requests per asset."""
    print(f"running {label} ...", flush=True)
    work = services.work / f"thumbor-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    (work / "method_engine.py").write_text(METHOD_ENGINE)
    conf = work / "thumbor.conf"
    max_pixels = Settings.model_fields["max_image_pixels"].default  # ours; thumbor's default is 75 MP
    conf.write_text(
        THUMBOR_CONF.format(root=str(CACHE), engine=engine, quality=QUALITY, max_pixels=max_pixels)
    )
    port = free_port()
    env = {**BASE_ENV, "PYTHONPATH": str(work)}
    command = [str(venv / "bin" / "thumbor"), "--ip", "127.0.0.1", "--port", str(port), "--conf", str(conf),
               "--processes", "2", "--log-level", "error"]  # fmt: skip
    with process(command, work / "thumbor.log", env) as server:
        wait_for(lambda: status_of(port, "/healthcheck") == 200, "thumbor")
        wait_for(lambda: len(tree(server.pid)) > 2, "thumbor's processes")
        warm = drive(port, [renditions_of(services.warm.name)] * WARM_UPS, services.concurrency)
        assert warm.statuses == {200: 2 * WARM_UPS}, f"thumbor warm-up answered {warm.statuses}"
        children = tree(server.pid)[1:]
        reset_peaks(children)
        jobs = [renditions_of(path.name) for path in services.files]
        before, client_before, busy = tree_cpu(server.pid), own_cpu(), machine_busy()
        started = time.perf_counter()
        seen = drive(port, jobs, services.concurrency)
        seconds = time.perf_counter() - started
        cpu = {"thumbor": tree_cpu(server.pid) - before, "client": own_cpu() - client_before}
        others = machine_busy() - busy - sum(cpu.values())
        failed = len(jobs) - seen.statuses.get(200, 0) // 2
        notes = {
            "thumbor child peak RSS over the run (MB)": f"{max(map(peak_mb, children)):.0f}",
            "client reconnects": str(seen.retries),
        }
        check = drive(port, [renditions_of(services.files[0].name)], 1, keep=True)
        sizes = []
        for body in check.bodies:
            with Image.open(io.BytesIO(body)) as im:
                assert im.format == "WEBP", im.format
                sizes.append("x".join(map(str, im.size)))
        notes["renditions of the first file"] = " + ".join(sizes)
        if services.huge is not None:
            reset_peaks(children)
            huge = drive(port, [renditions_of(services.huge.name)], 1)
            assert huge.statuses == {200: 2}, huge.statuses
            notes["thumbor child peak RSS, one 100 MP JPEG (MB)"] = f"{max(map(peak_mb, children)):.0f}"
    return Result(label, len(jobs), seconds, cpu, failed, others, notes, [len(jobs) / seconds])


def versions(venv: Path | None) -> str:
    import PIL
    from PIL import features

    libraries = f"libwebp {features.version('webp')}, libjpeg-turbo {features.version('jpg')}"
    ours_pillow = f"Pillow {PIL.__version__} ({libraries})"
    if venv is None:
        return f"Python {platform.python_version()}, {ours_pillow}"
    script = (
        "import PIL, thumbor; from PIL import features as f; "
        "print(f\"thumbor {thumbor.__version__}: Pillow {PIL.__version__} (libwebp {f.version('webp')}, "
        "libjpeg-turbo {f.version('jpg')})\")"
    )
    theirs = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True
    ).stdout
    return f"Python {platform.python_version()}; ours: {ours_pillow}; {theirs.strip()}"


# --- report ---

GROUPS = ["API", "images worker", "broker", "database", "S3", "thumbor"]


def combined(runs: list[Result]) -> Result:
    """Several rounds of one contender as one: assets, seconds and CPU added up, the highest peaks."""
    first = runs[0]
    notes: dict[str, str] = {}
    for r in runs:
        for key, value in r.notes.items():
            if key not in notes or notes[key] == value:
                notes[key] = value
            elif "(MB)" in key and "-" not in (value, notes[key]):
                notes[key] = str(max(int(notes[key]), int(value)))
            else:
                notes[key] = f"{notes[key]}, {value}"
    return Result(
        first.name, sum(r.assets for r in runs), sum(r.seconds for r in runs),
        {name: sum(r.cpu[name] for r in runs) for name in first.cpu}, sum(r.failed for r in runs),
        sum(r.others for r in runs), notes, [rate for r in runs for rate in r.rates],
    )  # fmt: skip


def server_cpu(result: Result) -> float:
    return sum(seconds for name, seconds in result.cpu.items() if name != "client")


def report(results: list[Result], header: list[str]) -> str:
    cores = os.cpu_count() or 1
    lines = [*header, ""]
    lines.append("| contender | assets/s | each round | median round | " + " | ".join(GROUPS)
                 + f" | all servers | client | {cores} cores / all servers' CPU "
                 "| the rest of the machine busy | failed |")  # fmt: skip
    lines.append("|---|---:|---|---:|" + "---:|" * (len(GROUPS) + 5))
    for r in results:
        cells = [f"{r.cpu[g] * 1000 / r.assets:.0f}" if g in r.cpu else "-" for g in GROUPS]
        total, client = server_cpu(r) * 1000 / r.assets, r.cpu["client"] * 1000 / r.assets
        lines.append(
            f"| {r.name} | **{r.assets / r.seconds:.2f}** | {', '.join(f'{x:.2f}' for x in r.rates)} "
            f"| {statistics.median(r.rates):.2f} | "
            + " | ".join(cells) + f" | **{total:.0f}** | {client:.1f} | {cores * 1000 / total:.2f}/s "
            f"| {r.others / r.seconds:.2f} cores | {r.failed} |"
        )  # fmt: skip
    lines += [
        "",
        "assets/s: all rounds' assets over all rounds' seconds; the median round is the rate of the middle",
        "round(s), which one slow round cannot move. CPU columns: milliseconds of CPU (user +",
        "system) per asset, by process tree. The cores over all servers' CPU per asset is the rate the",
        "machine would allow if that work had every core to itself (a bound, not a measurement); the rest of",
        "the machine: CPU that other processes used during the runs, in cores.",
        "",
    ]
    mine = [r for r in results if r.name.startswith("ours")]
    theirs = [r for r in results if r.name.startswith("thumbor")]
    if mine and theirs:
        lines.append(
            "| ours / thumbor | assets/s | median rounds | all servers' CPU per asset "
            "| images worker CPU / thumbor CPU |"
        )
        lines.append("|---|---:|---:|---:|---:|")
        for a in mine:
            for b in theirs:
                rate = (a.assets / a.seconds) / (b.assets / b.seconds)
                median = statistics.median(a.rates) / statistics.median(b.rates)
                cpu = (server_cpu(a) / a.assets) / (server_cpu(b) / b.assets)
                media = (a.cpu["images worker"] / a.assets) / (b.cpu["thumbor"] / b.assets)
                ratios = f"**{rate:.2f}x** | **{median:.2f}x** | {cpu:.2f}x | {media:.2f}x"
                lines.append(f"| {a.name} / {b.name} | {ratios} |")
        lines.append("")
    lines.append("| contender | measure | value |")
    lines.append("|---|---|---:|")
    for r in results:
        for key, value in r.notes.items():
            lines.append(f"| {r.name} | {key} | {value} |")
    return "\n".join(lines)


def write_results(text: str) -> None:
    content = RESULTS.read_text()
    opening, closing = MARKERS
    if opening not in content or closing not in content:
        print(f"\n{RESULTS.relative_to(ROOT)} has no {opening} ... {closing} markers: nothing written")
        return
    head, rest = content.split(opening, 1)
    tail = rest.split(closing, 1)[1]
    RESULTS.write_text(f"{head}{opening}\n{text}\n{closing}{tail}")
    print(f"\nwritten between the markers in {RESULTS.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--uploads", type=int, default=len(INPUTS), help="the first N of the 50 photos")
    parser.add_argument("--concurrency", type=int, default=4, help="client connections, for every contender")
    parser.add_argument("--rounds", type=int, default=4, help="every contender once a round, ABBA order")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (weed) runs of ours")
    parser.add_argument("--no-thumbor", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the 100 MP JPEG after each run")
    parser.add_argument("--thumbor-version", default="7.8.0")
    parser.add_argument("--write-results", action="store_true",
                        help=f"put the tables between {MARKERS[0]} markers in bench/RESULTS.md")  # fmt: skip
    args = parser.parse_args()
    load_before, begun = os.getloadavg(), time.perf_counter()
    paths, warm, huge, digest = inputs()
    files = paths[: args.uploads]
    print(f"inputs ready ({time.perf_counter() - begun:.0f} s): {len(files)} photos, digest {digest}")
    venv = None if args.no_thumbor else thumbor_venv(args.thumbor_version)
    bodies = [multipart(path) for path in files]
    rounds: dict[int, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="iskra-e2e-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        pg = stack.enter_context(private_postgres(work))
        redis = stack.enter_context(private_redis(work))
        huge_or_none = None if args.no_memory else huge
        services = Services(work, pg, redis, bodies, files, warm, huge_or_none, args.concurrency)
        runs: list[Callable[[], Result]] = [lambda: ours(services, "local disk", None)]
        if venv is not None:
            runs.append(lambda: thumbor(services, venv, "thumbor (as shipped)", "thumbor.engines.pil"))
        if not args.no_s3:
            runs.append(lambda: ours(services, "S3", work / f"weed-{uuid.uuid4().hex[:6]}"))
        if venv is not None:
            runs.append(lambda: thumbor(services, venv, f"thumbor (WebP method {METHOD})", "method_engine"))
        for turn in range(args.rounds):  # the order reversed every other round, so a drifting load evens out
            for index in range(len(runs)) if turn % 2 == 0 else reversed(range(len(runs))):
                result = runs[index]()
                rounds.setdefault(index, []).append(result)
                print(f"  {result.name}: {result.assets / result.seconds:.2f} assets/s; the rest of the "
                      f"machine busy {result.others / result.seconds:.1f} cores", flush=True)  # fmt: skip
    results = [combined(rounds[index]) for index in sorted(rounds)]
    load_after = os.getloadavg()
    header = [
        f"`bench/e2e.py --uploads {args.uploads} --concurrency {args.concurrency} --rounds {args.rounds}`, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average before {' / '.join(f'{x:.2f}' for x in load_before)}, "
        f"after {' / '.join(f'{x:.2f}' for x in load_after)} (1 / 5 / 15 min); {len(files)} photos "
        f"({sum(1 for p in files if '6000x4000' in p.name)} of them 24 MP, the rest 12 MP; digest {digest}), "
        f"{sum(p.stat().st_size for p in files) / 2**20:.0f} MiB; {versions(venv)}; "
        f"whole run {time.perf_counter() - begun:.0f} s.",
    ]
    text = report(results, header)
    print("\n" + text)
    if args.write_results:
        write_results(text)
    failed = sum(r.failed for r in results)
    if failed:
        print(f"\n{failed} asset(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
