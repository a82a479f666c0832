"""Live events benchmark: streams one events process holds, how soon a commit reaches them, and polling.

One events process started as the Procfile starts it (gunicorn, gthread, 1,200 threads) and one API process
(gunicorn, 2 sync workers), on a temporary database and a per-run Redis prefix. The client, in this process:

- opens `--streams` SSE streams (one per user, bearer tokens) on raw sockets read by one selector thread, and
  reports the events process's resident memory per open stream (VmRSS of its worker: before the streams,
  minus after, divided by their number) and the Redis connections it holds;
- with every stream open, commits `--samples` project renames (one transaction each, a random user each,
  `--rate` a second) and measures the delay from `commit()` returning to the event's arrival on its stream;
- the alternative: `--pollers` clients each poll `GET /v1/assets/{id}` once a second (random phase) while
  the asset's status changes (claimed, failed, reset: real transitions) at random moments; the delay is from
  the commit to the first answer showing the new status. It also reports the GET's own time.

    .venv/bin/python bench/events.py [--streams 1000] [--samples 300] [--pollers 30] [--changes 90]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
import redis
import requests
from sqlalchemy.orm import sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.asset_lifecycle import claim_for_rendering, create_upload, record_failure, reset_failed  # noqa: E402
from models.db import make_engine  # noqa: E402
from models.projects import list_projects, rename_project  # noqa: E402
from models.users import ensure_user  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN = uuid.uuid4().hex[:8]
BIN = Path(sys.executable).parent
NAME = re.compile(rb'"name":"(bench-[0-9]+)"')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def rss_bytes(pid: int) -> int:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024


def redis_connections(pid: int, port: int) -> int:
    """TCP connections process `pid` holds to `port` (its Redis), from /proc: other clients don't count."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def worker_pid(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


def environment(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key.isupper()}
    env.update(
        DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
        REDIS_KEY_PREFIX=settings.redis_key_prefix, AUTH_MODE="dev",
        DEV_JWT_SECRET=settings.dev_jwt_secret.get_secret_value(),
        SIGNING_SECRET=settings.signing_secret.get_secret_value(), ISKRA_DATA_DIR=str(settings.data_dir),
        LOG_LEVEL="WARNING", WEB_CONCURRENCY="2", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )  # fmt: skip
    return env


def gunicorn(stack: ExitStack, env: dict[str, str], port: int, *args: str) -> subprocess.Popen:
    command = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", *args]
    log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(process.wait, 20)
    stack.callback(process.terminate)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/livez", timeout=2).ok:
                return process
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{args[-1]} did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Streams:
    """Many open SSE streams on one selector thread; records when each `bench-N` rename arrives."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.arrivals: dict[str, float] = {}
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def open(self, port: int, tokens: list[str]) -> None:
        for token in tokens:
            sock = socket.create_connection(("127.0.0.1", port))
            request = (f"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n")  # fmt: skip
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:200])
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.opened += 1
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                data = key.fileobj.recv(65536)
                now = time.perf_counter()
                for name in NAME.findall(data):
                    self.arrivals.setdefault(name.decode(), now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()


def measure_streams(args, settings, sessions, events_port, events_master) -> dict:
    with sessions.begin() as session:
        users = [f"user_bench_{i:05d}" for i in range(args.streams)]
        for user_id in users:
            ensure_user(session, user_id)
    with sessions.begin() as session:
        projects = {user: str(list_projects(session, user, 1, None)[0][0].id) for user in users}
    tokens = [make_dev_token(settings, user) for user in users]
    redis_port = redis.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs.get("port", 6379)
    time.sleep(2)  # the relay has appended the users' first-project events; the process is idle
    pid = worker_pid(events_master)
    before_rss, before_clients = rss_bytes(pid), redis_connections(pid, redis_port)
    streams = Streams()
    started = time.perf_counter()
    streams.open(events_port, tokens)
    open_seconds = time.perf_counter() - started
    time.sleep(1)
    after_rss, after_clients = rss_bytes(pid), redis_connections(pid, redis_port)
    commits: dict[str, float] = {}
    for number in range(args.samples):
        user = random.choice(users)
        with sessions.begin() as session:
            rename_project(session, user, projects[user], f"bench-{number}")
        commits[f"bench-{number}"] = time.perf_counter()
        time.sleep(1 / args.rate)
    deadline = time.monotonic() + 10
    while len(streams.arrivals) < len(commits) and time.monotonic() < deadline:
        time.sleep(0.1)
    streams.close()
    delays = [
        streams.arrivals[name] - committed for name, committed in commits.items() if name in streams.arrivals
    ]
    return {
        "streams": streams.opened, "open_seconds": open_seconds,
        "rss_before": before_rss, "rss_after": after_rss,
        "redis_clients": (before_clients, after_clients),
        "delivered": len(delays), "sent": len(commits), "delays": delays,
    }  # fmt: skip


def measure_polling(args, settings, sessions, api_port) -> dict:
    assets = []
    with sessions.begin() as session:
        for number in range(args.pollers):
            user = f"user_poll_{number:03d}"
            ensure_user(session, user)
            asset = create_upload(
                session, asset_id=uuid.uuid4(), user_id=user, asset_type="image",
                storage_key=f"bench/{number}", mime_type="image/png", size_bytes=10, generation={},
            )  # fmt: skip
            assets.append((user, str(asset.id)))
    answers: dict[str, list[tuple[float, str]]] = {asset_id: [] for _, asset_id in assets}
    request_times: list[float] = []
    stop = threading.Event()

    def poll(user: str, asset_id: str) -> None:
        http = requests.Session()
        headers = {"Authorization": f"Bearer {make_dev_token(settings, user)}"}
        url = f"http://127.0.0.1:{api_port}/v1/assets/{asset_id}"
        next_poll = time.perf_counter() + random.random()
        while not stop.is_set():
            time.sleep(max(0.0, next_poll - time.perf_counter()))
            next_poll += 1.0
            sent = time.perf_counter()
            body = http.get(url, headers=headers, timeout=10).json()
            answered = time.perf_counter()
            request_times.append(answered - sent)
            answers[asset_id].append((answered, f"{body['status']}:{body['error']}"))

    threads = [threading.Thread(target=poll, args=asset, daemon=True) for asset in assets]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    commits: list[tuple[str, str, float]] = []
    steps = ("processing", "failed", "pending")
    for number in range(args.changes):
        _, asset_id = assets[number % len(assets)]
        step = steps[(number // len(assets)) % len(steps)]
        with sessions.begin() as session:
            if step == "processing":
                claim_for_rendering(session, asset_id, max_attempts=100)
            elif step == "failed":
                record_failure(session, uuid.UUID(asset_id), f"bench-{number}")
            else:
                reset_failed(session, [asset_id])
        error = f"bench-{number}" if step == "failed" else None
        commits.append((asset_id, f"{step}:{error}", time.perf_counter()))
        time.sleep(random.uniform(0.0, 2.0 * args.poll_seconds / args.changes))
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(5)
    delays = []
    for asset_id, state, committed in commits:
        shown = [answered for answered, seen in answers[asset_id] if answered >= committed and seen == state]
        if shown:
            delays.append(shown[0] - committed)
    return {"delays": delays, "missed": len(commits) - len(delays), "request_times": request_times}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="commits per second during the delay run")
    parser.add_argument("--pollers", type=int, default=30)
    parser.add_argument("--changes", type=int, default=90)
    parser.add_argument(
        "--poll-seconds", type=float, default=30.0, help="about how long the polling run lasts"
    )
    args = parser.parse_args()
    name = f"iskra_bench_{RUN}"
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data_dir:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        stack.callback(_drop, name)
        database_url = (
            SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
        )
        migrate.upgrade(database_url)
        settings = Settings(
            _env_file=None, database_url=database_url, redis_url=REDIS_URL,
            redis_key_prefix=f"iskra-bench-{RUN}:", auth_mode="dev", ISKRA_DATA_DIR=data_dir,
            dev_jwt_secret="bench-secret-long-enough-for-hs256-signing",
            signing_secret="bench-signing-secret-long",
        )  # fmt: skip
        stack.callback(_clear_redis, settings.redis_key_prefix)
        env = environment(settings)
        events_port, api_port = free_port(), free_port()
        events = gunicorn(stack, env, events_port, "--workers", "1", "--worker-class", "gthread",
                          "--threads", "1200", "--worker-connections", "1200",
                          "web.events.wsgi:app_from_environment()")  # fmt: skip
        gunicorn(stack, env, api_port, "web.wsgi:app_from_environment()")
        engine = make_engine(settings)
        stack.callback(engine.dispose)
        sessions = sessionmaker(engine, expire_on_commit=False)
        started = time.monotonic()
        streamed = measure_streams(args, settings, sessions, events_port, events.pid)
        polled = measure_polling(args, settings, sessions, api_port)
        report(streamed, polled, time.monotonic() - started)


def report(streamed: dict, polled: dict, seconds: float) -> None:
    count = streamed["streams"]
    per_stream = (streamed["rss_after"] - streamed["rss_before"]) / count
    rss = streamed["rss_before"] / 2**20, streamed["rss_after"] / 2**20
    print(f"\nstreams held by one events process: {count} (opened in {streamed['open_seconds']:.1f} s)")
    print(f"events worker RSS: {rss[0]:.1f} MiB idle, {rss[1]:.1f} MiB with the streams open: ", end="")
    print(f"{per_stream / 1024:.1f} KiB per stream")
    idle, busy = streamed["redis_clients"]
    print(f"Redis connections of the events worker: {idle} idle, {busy} with the streams open")
    print("\n| contender | samples | p50 | p99 | max |\n|---|---|---|---|---|")
    rows = [
        (f"stream, {count} open", f"{len(streamed['delays'])}/{streamed['sent']}", streamed["delays"], 0),
        (
            "polling once a second",
            f"{len(polled['delays'])} (missed {polled['missed']})",
            polled["delays"],
            0,
        ),
        ("(the poll's GET itself)", str(len(polled["request_times"])), polled["request_times"], 1),
    ]
    for name, samples, values, digits in rows:
        ms = [1000 * value for value in values]
        cells = " | ".join(
            f"{figure:.{digits}f} ms" for figure in (percentile(ms, 0.5), percentile(ms, 0.99), max(ms))
        )
        print(f"| {name} | {samples} | {cells} |")
    mean = 1000 * sum(polled["delays"]) / len(polled["delays"])
    print(f"\npolling mean delay {mean:.0f} ms; whole run {seconds:.0f} s")


def _drop(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clear_redis(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)


if __name__ == "__main__":
    main()
