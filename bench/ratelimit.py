"""Rate limiter benchmark: its cost per request, Redis round trips per request, accuracy under concurrency.

Runs the API under gunicorn against the local PostgreSQL (a temporary database) and a private
redis-server (so Redis command counts are this benchmark's alone), and compares, in one run and
in alternating rounds, the same endpoints plain, with one bare Redis PING (the price of any round
trip), and with `@rate_limited`; then one client's sequential latency, and how many of 8 concurrent
clients' requests the limiter admits against its configured limit:

    .venv/bin/python bench/ratelimit.py [--seconds 2] [--rounds 5] [--clients 8] [--worker-class gthread]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ACCURACY_LIMIT = 300
HUGE = 1_000_000_000
OVERRIDES = {
    "default": {
        "upload": {"perMinute": HUGE, "perHour": HUGE},
        "video": {"perMinute": ACCURACY_LIMIT, "perHour": None, "perDay": None},
    }
}


def bench_app():
    """The API plus bench-only twins of a cheap endpoint, with and without the limiter (gunicorn factory)."""
    from flask import Blueprint

    from web.api import _authenticate
    from web.app import create_app
    from web.auth import current_identity
    from web.ratelimit import rate_limited
    from web.services import services
    from web.views import me

    app = create_app(Settings())
    bench = Blueprint("bench", __name__, url_prefix="/v1bench")
    bench.before_request(_authenticate)

    def whoami():
        return {"userId": current_identity().user_id}

    def pinging(view):
        def pinged():
            services().limiter.redis.ping()
            return view()

        return pinged

    for name, view in (("whoami", whoami), ("usage", me.get_usage)):
        bench.add_url_rule(f"/{name}", name, view)
        bench.add_url_rule(f"/{name}-ping", f"{name}_ping", pinging(view))
        bench.add_url_rule(f"/{name}-limited", f"{name}_limited", rate_limited("upload")(view))
    bench.add_url_rule("/accuracy", "accuracy", rate_limited("video")(whoami))
    app.register_blueprint(bench)
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.ConnectionError):
            pass
        time.sleep(0.1)
    raise RuntimeError("service did not come up")


def hammer(
    port: int, path: str, tokens: list[list[str]], seconds: float | None, per_client: int | None
) -> list[int]:
    """Each client thread sends requests on its own keep-alive connection, cycling through its users'
    tokens; returns the status codes."""
    statuses: list[list[int]] = [[] for _ in tokens]
    start = threading.Barrier(len(tokens))

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = itertools.cycle([{"Authorization": f"Bearer {token}"} for token in tokens[index]])
        start.wait()
        deadline = time.monotonic() + (seconds or 0)
        while (seconds and time.monotonic() < deadline) or (per_client and len(statuses[index]) < per_client):
            connection.request("GET", path, headers=next(headers))
            response = connection.getresponse()
            response.read()
            statuses[index].append(response.status)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(tokens))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [status for found in statuses for status in found]


# Commands the script runs inside Redis: commandstats counts them too, but they are no round trips.
SCRIPT_INNER = {"time", "zremrangebyscore", "zcount", "zcard", "zadd", "pexpire", "zrangebyscore"}


def round_trips(server: redis.Redis) -> dict[str, int]:
    """Calls per top-level command so far (INFO commandstats, minus the script's inner commands)."""
    stats = server.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}
    return {name: count for name, count in calls.items() if name not in SCRIPT_INNER | {"info"}}


def script_usec(server: redis.Redis) -> float:
    return server.info("commandstats").get("cmdstat_evalsha", {}).get("usec_per_call", 0.0)


def median_latency_us(port: int, path: str, tokens: list[str], count: int) -> float:
    """One client, one request at a time: the median time to an answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = itertools.cycle([{"Authorization": f"Bearer {token}"} for token in tokens])
    took = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path, headers=next(headers))
        connection.getresponse().read()
        took.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(took) * 1e6


def compare(port: int, server: redis.Redis, name: str, tokens: list[list[str]], options) -> dict:
    """Rounds of plain, +PING and +limiter, alternating, so machine noise falls on all three alike."""
    paths = {
        "plain": f"/v1bench/{name}",
        "ping": f"/v1bench/{name}-ping",
        "limited": f"/v1bench/{name}-limited",
    }
    # Warm up: every user created, scripts loaded, pools filled.
    hammer(port, paths["plain"], tokens, None, len(tokens[0]))
    for path in paths.values():
        hammer(port, path, tokens, 1.0, None)
    rates: dict[str, list[float]] = {contender: [] for contender in paths}
    trips: list[float] = []
    evalshas: list[float] = []
    for _ in range(options.rounds):
        for contender, path in paths.items():
            before = round_trips(server)
            started = time.perf_counter()
            statuses = hammer(port, path, tokens, options.seconds, None)
            elapsed = time.perf_counter() - started
            assert set(statuses) == {200}, set(statuses)
            rates[contender].append(len(statuses) / elapsed)
            if contender == "limited":
                after = round_trips(server)
                trips.append((sum(after.values()) - sum(before.values())) / len(statuses))
                evalshas.append((after.get("evalsha", 0) - before.get("evalsha", 0)) / len(statuses))
    rps = {contender: statistics.median(found) for contender, found in rates.items()}
    # Each round's forms ran seconds apart, so their ratio is steadier than the ratio of the medians.
    limited = [with_ / without for with_, without in zip(rates["limited"], rates["plain"], strict=True)]
    pinged = [with_ / without for with_, without in zip(rates["ping"], rates["plain"], strict=True)]
    latency = {
        contender: median_latency_us(port, path, tokens[0], options.sequential)
        for contender, path in paths.items()
    }
    return {
        "rps_plain": round(rps["plain"]),
        "rps_ping": round(rps["ping"]),
        "rps_limited": round(rps["limited"]),
        "ratio_limited_to_plain": round(statistics.median(limited), 3),
        "ratio_range": [round(min(limited), 3), round(max(limited), 3)],
        "cost_percent_limiter": round(100 * (1 - statistics.median(limited)), 1),
        "cost_percent_one_ping": round(100 * (1 - statistics.median(pinged)), 1),
        "redis_round_trips_per_request": round(statistics.median(trips), 3),
        "evalsha_per_request": round(statistics.median(evalshas), 3),
        "p50_latency_us": {contender: round(value) for contender, value in latency.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", help="gthread lets the 8 clients race")
    parser.add_argument("--sequential", type=int, default=400, help="requests for the latency medians")
    parser.add_argument("--users-per-client", type=int, default=400)
    options = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    database = f"iskra_bench_{run}"
    redis_port, api_port = free_port(), free_port()
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    base = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    database_url = f"{base}/{database}"
    processes: list[subprocess.Popen] = []
    try:
        migrate.upgrade(database_url)
        scratch = tempfile.mkdtemp(prefix="iskra-bench-")
        processes.append(
            subprocess.Popen(
                ["/usr/bin/redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", scratch],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        server = redis.Redis(port=redis_port)
        wait_for(server.ping)
        secret = "bench-secret-long-enough-for-hs256-signatures"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "REDIS_KEY_PREFIX": f"iskra-bench-{run}:",
            "AUTH_MODE": "dev",
            "DEV_JWT_SECRET": secret,
            "ISKRA_DATA_DIR": scratch,
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_OVERRIDES": json.dumps(OVERRIDES),
        }
        processes.append(
            subprocess.Popen(
                [str(Path(sys.executable).parent / "gunicorn"), "-k", options.worker_class,
                 "-w", str(options.workers), "--threads", "8", "-b", f"127.0.0.1:{api_port}",
                 "--log-level", "warning", "bench.ratelimit:bench_app()"],
                cwd=ROOT, env=env,
            )
        )  # fmt: skip
        settings = Settings(_env_file=None, auth_mode="dev", dev_jwt_secret=secret)
        # Many users, as in production: each user's sliding-window log then holds a handful of entries,
        # not the hundreds of thousands one user hammering the API for minutes would leave.
        tokens = [
            [make_dev_token(settings, f"user_bench_{i}_{j}") for j in range(options.users_per_client)]
            for i in range(options.clients)
        ]

        def up() -> bool:
            connection = http.client.HTTPConnection("127.0.0.1", api_port, timeout=2)
            connection.request("GET", "/livez")
            return connection.getresponse().status == 200

        wait_for(up)
        report: dict = {
            "clients": options.clients,
            "gunicorn": f"{options.workers} x {options.worker_class}",
            "seconds": options.seconds,
            "rounds": options.rounds,
        }
        for name in ("whoami", "usage"):
            report[name] = compare(api_port, server, name, tokens, options)
        report["script_usec_per_call_in_redis"] = script_usec(server)
        statuses = hammer(api_port, "/v1bench/accuracy", [tokens[0][:1]] * options.clients, None, 100)
        report["accuracy"] = {
            "limit": ACCURACY_LIMIT,
            "requests": len(statuses),
            "allowed": statuses.count(200),
            "refused": statuses.count(429),
        }
        print(json.dumps(report, indent=2))
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=20)
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
