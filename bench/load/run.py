"""The canvas's traffic against the real stack, ramped until the API's p99 passes 250 ms or errors appear.

One command, from the repository root (locust comes with the `bench` extra):

    .venv/bin/pip install -c constraints.txt -e '.[bench]'
    .venv/bin/python bench/load/run.py                  # both configurations, 15 minutes at most

For each configuration (`--api-workers 1,2`: gunicorn API processes) it starts, on this machine, a fresh
stack: a temporary database on the local PostgreSQL (`BENCH_POSTGRES_URL`), a private `redis-server` on a
free port (rate limits, events, the Celery broker: its command counts and CPU are this run's alone), the
API (gunicorn gthread, WEB_CONCURRENCY = the configuration), the events app (as the Procfile runs it), an
images worker (prefork, 2 processes) and a renders worker (1), with local-disk storage in a temporary
directory. Then locust (headless, `bench/load/locustfile.py`) ramps simulated canvases in steps while this
process samples, once a second, from /proc: the CPU time of every process of the stack (API workers,
events, each Celery worker, this database's PostgreSQL backends, Redis, locust itself) and of the whole
machine; PostgreSQL's connections to the database (all, and those active); Redis's commands; the
queues' depths. It prints, per step: users, requests/s, the API's p50/p99 and errors, time-to-thumbnail,
queue depth, CPU per process, connections and Redis commands/s; per endpoint at the last step held and
the first not held; what saturated first; and the two configurations side by side. Everything it
started is stopped, the database dropped and the temporary files removed at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
import redis
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from bench.load.report import (  # noqa: E402
    Sample,
    StepFigures,
    Window,
    bottleneck,
    cpu_percent,
    held,
    remeasured,
    saturation,
    summarise_step,
)
from core import taskqueue  # noqa: E402
from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent
RUN = uuid.uuid4().hex[:8]
TICK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
SECRET = "load-test-dev-jwt-secret-0123456789abcdef"
ROOMY = {"perMinute": 100_000, "perHour": 1_000_000, "perDay": 10_000_000}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def photo(seed: int, size: int = 1024) -> bytes:
    """A photo-like square JPEG (smooth field and grain), like a generated image dropped on the canvas."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([(x / 6 + 40 * seed) % 256, (y / 5) % 256, ((x + y) / 11) % 256], axis=2)
    pixels = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


# -- processes -------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
    return found


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def machine_busy_seconds() -> float:
    numbers = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = numbers[3] + numbers[4]  # idle, iowait
    return (sum(numbers[:8]) - idle) / TICK


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Stack:
    api_port: int
    events_port: int
    redis_port: int
    database: str
    env: dict[str, str]
    groups: dict[str, int] = field(default_factory=dict)  # group -> the pid whose tree it is
    capacity: dict[str, int] = field(default_factory=dict)  # group -> processes (one core each at most)


def start(stack: ExitStack, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    return process


def wait_until(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if check():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not start within {timeout:.0f} s")


def start_stack(stack: ExitStack, work: Path, api_workers: int) -> Stack:
    redis_port = free_port()
    redis_server = start(stack, ["/usr/bin/redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(work)],
                         os.environ.copy(), work / "redis.log")  # fmt: skip
    wait_until(redis.Redis(port=redis_port).ping, "redis-server")

    database = f"iskra_load_{RUN}_{api_workers}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    stack.callback(drop_database, database)
    database_url = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    database_url += f"/{database}"
    migrate.upgrade(database_url)

    env = {key: value for key, value in os.environ.items() if key.isupper()}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", REDIS_KEY_PREFIX=f"iskra-load-{RUN}:",
        AUTH_MODE="dev", DEV_JWT_SECRET=SECRET, SIGNING_SECRET="load-test-signing-secret-0123456789",
        STORAGE_BACKEND="local", ISKRA_DATA_DIR=str(work / "data"), LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(work / "metrics"), WEB_CONCURRENCY=str(api_workers),
        # The limiter runs on every counted request as in production, with room for the simulated users.
        RATE_LIMIT_OVERRIDES=json.dumps({"default": {"upload": ROOMY, "standard": ROOMY, "video": ROOMY}}),
    )  # fmt: skip
    env.pop("CELERY_BROKER_URL", None)  # the broker is the private Redis
    (work / "metrics").mkdir()
    api_port, events_port = free_port(), free_port()
    gunicorn = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
    api = start(stack, [*gunicorn, "--bind", f"127.0.0.1:{api_port}", "web.wsgi:app_from_environment()"],
                env, work / "api.log")  # fmt: skip
    events = start(stack, [*gunicorn, "--bind", f"127.0.0.1:{events_port}", "--workers", "1",
                           "--worker-class", "gthread", "--threads", "1200", "--worker-connections", "1200",
                           "--graceful-timeout", "5", "web.events.wsgi:app_from_environment()"],
                   env, work / "events.log")  # fmt: skip
    workers = {}
    for queue, concurrency in (("images", 2), ("renders", 1)):
        workers[queue] = start(stack, [str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", queue,
                                       "-n", f"{queue}-load-{RUN}@%h", "-c", str(concurrency),
                                       "--without-mingle", "--without-gossip"],
                               env, work / f"worker-{queue}.log")  # fmt: skip
    for port in (api_port, events_port):
        wait_until(lambda port=port: requests.get(f"http://127.0.0.1:{port}/livez", timeout=2).ok, f":{port}")
    for queue, concurrency in (("images", 2), ("renders", 1)):  # up once its pool processes are forked
        wait_until(lambda q=queue, c=concurrency: len(descendants(workers[q].pid)) > c, f"{queue} worker")
    return Stack(
        api_port=api_port, events_port=events_port, redis_port=redis_port, database=database, env=env,
        groups={"API (gunicorn)": api.pid, "events": events.pid, "images worker": workers["images"].pid,
                "renders worker": workers["renders"].pid, "Redis": redis_server.pid},
        capacity={"API (gunicorn)": api_workers, "events": 1, "images worker": 2, "renders worker": 1,
                  "Redis": 1},
    )  # fmt: skip


def drop_database(name: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- sampling --------------------------------------------------------------------------------------------


@dataclass
class Reading:
    at: float
    cpu: dict[str, float]  # group -> CPU seconds so far
    machine: float
    connections: int
    active: int
    commands: int
    queues: dict[str, int]


class Sampler:
    """Once a second: CPU seconds per process group, the machine's, connections, Redis, queue depths."""

    def __init__(self, target: Stack) -> None:
        self.target = target
        self.readings: list[Reading] = []
        groups = [*target.groups, "PostgreSQL", "locust"]
        self.seen: dict[str, dict[int, float]] = {group: {} for group in groups}
        self.locust_pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        broker = redis.Redis(port=self.target.redis_port)
        with psycopg.connect(SERVER_URL, autocommit=True) as database:
            while not self._stop.is_set():
                self.readings.append(self._read(broker, database))
                self._stop.wait(1.0)

    def _read(self, broker: redis.Redis, database: psycopg.Connection) -> Reading:
        roots = dict(self.target.groups)
        if self.locust_pid:
            roots["locust"] = self.locust_pid
        for group, root in roots.items():
            for pid in descendants(root):
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    self.seen[group][pid] = seconds
        backends = database.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE datname = %s", (self.target.database,)
        ).fetchall()
        for pid, _state in backends:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                self.seen["PostgreSQL"][pid] = seconds
        info = broker.info("stats")
        return Reading(
            at=time.time(),
            cpu={group: sum(pids.values()) for group, pids in self.seen.items()},
            machine=machine_busy_seconds(),
            connections=len(backends),
            active=sum(state == "active" for _pid, state in backends),
            commands=int(info["total_commands_processed"]),
            queues=taskqueue.queue_depths(broker, self.target.env["REDIS_KEY_PREFIX"]),
        )

    def between(self, window: Window) -> list[Reading]:
        inside = [r for r in self.readings if window.start <= r.at <= window.end]
        before = [r for r in self.readings if r.at < window.start][-1:]
        return before + inside


# -- one configuration -----------------------------------------------------------------------------------


@dataclass
class StepResult:
    figures: StepFigures
    cpu: dict[str, float]
    machine: float
    connections: int
    active: int
    redis_per_second: float
    queues: dict[str, tuple[int, int]]  # queue -> tasks waiting at the window's start and end


def run_configuration(api_workers: int, args: argparse.Namespace, images: Path) -> dict:
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix=f"iskra-load-{api_workers}-"))
        stack.callback(shutil.rmtree, work, True)
        target = start_stack(stack, work, api_workers)
        settings = Settings(_env_file=None, auth_mode="dev", dev_jwt_secret=SECRET)
        tokens = [make_dev_token(settings, f"user_load_{n:04d}") for n in range(args.max_users)]
        (work / "tokens.json").write_text(json.dumps(tokens))
        out = work / "samples.json"
        env = {
            **target.env, "LOAD_TOKENS": str(work / "tokens.json"), "LOAD_IMAGES": str(images),
            "LOAD_EVENTS_URL": f"http://127.0.0.1:{target.events_port}", "LOAD_OUT": str(out),
            "LOAD_STEP_USERS": str(args.step_users), "LOAD_STEP_SECONDS": str(args.step_seconds),
            "LOAD_SETTLE_SECONDS": str(args.settle_seconds), "LOAD_MAX_USERS": str(args.max_users),
            "LOAD_P99_MS": str(args.p99_ms),
        }  # fmt: skip
        steps = args.max_users // args.step_users
        limit = (steps + 3) * args.step_seconds + 30  # room for a few steps measured twice
        sampler = Sampler(target).start()
        load_before = load_average()
        print(f"\n== {api_workers} API process(es): ramp of {args.step_users} users every "
              f"{args.step_seconds:.0f} s, up to {args.max_users} (load average {load_before})")  # fmt: skip
        locust = subprocess.Popen(
            [str(BIN / "locust"), "-f", str(ROOT / "bench" / "load" / "locustfile.py"), "--headless",
             "--host", f"http://127.0.0.1:{target.api_port}", "--run-time", f"{limit:.0f}s",
             "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING"],
            env=env, cwd=ROOT, stdout=(work / "locust.log").open("wb"), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        sampler.locust_pid = locust.pid
        assert locust.stderr is not None
        for line in locust.stderr:
            if line.startswith("step "):
                print("  " + line.rstrip(), flush=True)
        locust.wait(limit + 60)
        time.sleep(1.5)
        sampler.stop()
        load_after = load_average()
        if not out.exists():
            raise RuntimeError(f"locust wrote no results; see {work / 'locust.log'}")
        raw = json.loads(out.read_text())
        samples = [Sample(*row) for row in raw["samples"]]
        windows = [Window(*row) for row in raw["windows"]]
        results = [step_result(samples, window, sampler) for window in windows]
        unfinished = pending_thumbnails(target)
        return {
            "api_workers": api_workers, "steps": results, "load": (load_before, load_after),
            "capacity": target.capacity, "unfinished": unfinished,
        }  # fmt: skip


def step_result(samples: list[Sample], window: Window, sampler: Sampler) -> StepResult:
    readings = sampler.between(window)
    first, last = readings[0], readings[-1]
    span = Window(window.users, first.at, last.at)
    cpu = cpu_percent({group: (first.cpu.get(group, 0.0), last.cpu[group]) for group in last.cpu}, span)
    return StepResult(
        figures=summarise_step(samples, window),
        cpu=cpu,
        machine=100.0 * (last.machine - first.machine) / span.seconds if span.seconds else 0.0,
        connections=max(r.connections for r in readings),
        active=max(r.active for r in readings),
        redis_per_second=(last.commands - first.commands) / span.seconds if span.seconds else 0.0,
        queues={queue: (first.queues[queue], last.queues[queue]) for queue in last.queues},
    )


def pending_thumbnails(target: Stack) -> dict[str, int]:
    url = SERVER_URL.rsplit("/", 1)[0] + f"/{target.database}"
    with psycopg.connect(url) as database:
        return dict(database.execute("SELECT status, count(*) FROM assets GROUP BY status").fetchall())


# -- the report ------------------------------------------------------------------------------------------


def waiting(queues: dict[str, tuple[int, int]]) -> str:
    shown = [f"{queue} {start} → {end}" for queue, (start, end) in queues.items() if start or end]
    return ", ".join(shown) or "0"


def report(configuration: dict, p99_ms: float) -> tuple[int, str]:
    steps: list[StepResult] = configuration["steps"]
    users_held, first_not_held = saturation([s.figures for s in steps], p99_ms)
    groups = list(steps[0].cpu) if steps else []
    print(f"\n### {configuration['api_workers']} API process(es) (load average before/after: "
          f"{configuration['load'][0]} / {configuration['load'][1]})\n")  # fmt: skip
    head = [
        "users",
        "API req/s",
        "API p50",
        "API p99",
        "errors",
        "upload→ready p50 / p99",
        "tasks waiting (start → end)",
        "PG conns (active)",
        "Redis cmd/s",
        "machine CPU",
        "the stack's CPU",
        *groups,
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * (11 + len(groups)))
    for index, step in enumerate(steps):
        api, thumbnail = step.figures.api, step.figures.thumbnail
        assert api is not None
        ttt = f"{thumbnail.p50:.0f} / {thumbnail.p99:.0f} ms" if thumbnail else "—"
        mark = "" if held(step.figures, p99_ms) else " ✗"
        mark += ", measured again:" if remeasured([s.figures for s in steps], index, p99_ms) else ""
        cells = [f"{step.figures.users}{mark}", f"{api.per_second:.0f}", f"{api.p50:.0f} ms",
                 f"{api.p99:.0f} ms", str(api.errors), ttt, waiting(step.queues),
                 f"{step.connections} ({step.active})", f"{step.redis_per_second:.0f}",
                 f"{step.machine:.0f} %", f"{sum(step.cpu.values()):.0f} %",
                 *(f"{step.cpu[g]:.0f} %" for g in groups)]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    last_held = [s for s in steps if s.figures.users == users_held and held(s.figures, p99_ms)][-1:]
    shown = [(s, "last step held") for s in last_held]
    shown += [(s, "first step not held") for s in steps if s.figures is first_not_held]
    for step, label in shown:
        print(f"\nper endpoint, {label} ({step.figures.users} users):\n")
        print("| endpoint | req/s | p50 | p99 | errors |\n|---|---|---|---|---|")
        for name, figures in step.figures.endpoints.items():
            print(f"| {name} | {figures.per_second:.1f} | {figures.p50:.0f} ms | {figures.p99:.0f} ms | "
                  f"{figures.errors} |")  # fmt: skip
    if first_not_held is None:
        verdict = f"not saturated up to {users_held} users (raise --max-users)"
    else:
        step = next(s for s in steps if s.figures is first_not_held)
        api = first_not_held.api
        assert api is not None
        reason = f"p99 {api.p99:.0f} ms" + (f", {api.errors} errors" if api.errors else "")
        busy = bottleneck(step.cpu, configuration["capacity"], CORES, step.machine)
        for queue, (start, end) in step.queues.items():
            if end >= 20 and end > start + 10:
                busy.append(f"the {queue} queue falls behind ({start} → {end} waiting)")
        busy = busy or ["no one process"]
        where = (
            f"at {first_not_held.users}: {reason}, the stack's processes {sum(step.cpu.values()):.0f} % CPU"
        )
        verdict = f"held {users_held} users; {where}; saturated: {'; '.join(busy)}"
    print(f"\n{verdict}")
    print(f"assets at the end: {configuration['unfinished']}")
    return users_held, verdict


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api-workers", default="1,2", help="configurations to compare (default 1,2)")
    parser.add_argument("--step-users", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=30.0)
    parser.add_argument("--settle-seconds", type=float, default=10.0, help="not measured after each step")
    parser.add_argument("--max-users", type=int, default=120)
    parser.add_argument("--p99-ms", type=float, default=250.0)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows as it comes, also through `tee`
    if not (BIN / "locust").exists():
        print("locust is missing: .venv/bin/pip install -c constraints.txt -e '.[bench]'", file=sys.stderr)
        return 2
    configurations = [int(value) for value in args.api_workers.split(",")]
    started = time.monotonic()
    print(f"machine: {CORES} cores, load average {load_average()}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="iskra-load-images-") as images:
        for seed in range(4):
            (Path(images) / f"photo-{seed}.jpg").write_bytes(photo(seed))
        results = [run_configuration(workers, args, Path(images)) for workers in configurations]
    verdicts = [(result["api_workers"], *report(result, args.p99_ms)) for result in results]
    print("\n| API processes | users held | at saturation |\n|---|---|---|")
    for workers, users_held, verdict in verdicts:
        print(f"| {workers} | {users_held} | {verdict} |")
    print(f"\nwhole run {time.monotonic() - started:.0f} s; load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
