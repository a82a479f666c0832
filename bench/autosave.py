"""Autosave benchmark: PUT /v1/projects/{id}/state against the API under gunicorn.

Contenders, side by side on one temporary database: a 1,000-element canvas (~320 KB) and a 10-element
one, each saved by N concurrent clients (own user, own project, If-Match chained from the last ETag).
Reports saves/s and p50/p99 latency, then database work per save three ways:
- on the wire: client/server round trips per save, from libpq's protocol trace (each ends in ReadyForQuery);
- in the API process: SQL statements, transactions and pool checkouts per save (SQLAlchemy events);
- in PostgreSQL: deltas of pg_stat_database (xact_commit, xact_rollback, tup_updated) per save.

    .venv/bin/python bench/autosave.py [--seconds 10] [--rounds 2] [--clients 8] [--workers 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
import requests
from psycopg.pq import Trace
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.tables import Asset  # noqa: E402
from models.users import ensure_user  # noqa: E402
from web.app import create_app  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ASSETS_PER_USER = 100
RUN = uuid.uuid4().hex[:8]


def canvas(count: int, asset_ids: list[str], variant: int) -> bytes:
    """A canvas of `count` image/video elements referencing the user's assets (array order = z-order)."""
    elements = [
        {"id": f"element-{n:04d}", "type": "image", "zIndex": n, "width": 512, "height": 384,
         "transform": {"x": (n % 40) * 530.0 + variant, "y": (n // 40) * 400.0, "scale": 0.75, "rotation": 0},
         "assetId": asset_ids[n % len(asset_ids)], "assetType": "image", "assetSyncedAt": 1_732_000_000_000,
         "originalFalUrl": f"https://v3.fal.media/files/bench/{n:04d}.png"}
        for n in range(count)
    ]  # fmt: skip
    state = {"lastModified": 1_732_000_000_000 + variant, "backgroundColor": "#f4f4f5",
             "viewport": {"x": 0, "y": 0, "scale": 1}, "elements": elements}  # fmt: skip
    return json.dumps(state).encode()


@contextmanager
def temporary_database():
    name = f"iskra_bench_{RUN}"
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    try:
        migrate.upgrade(url)
        yield name, url
    finally:
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, redis_url=REDIS_URL,
        redis_key_prefix=f"iskra-bench-{RUN}:",
        ISKRA_DATA_DIR=data_dir, auth_mode="dev", dev_jwt_secret="bench-secret-long-enough-for-hs256-signing",
        signing_secret="bench-signing-secret-long-enough", log_level="WARNING",
    )  # fmt: skip


def make_users(settings: Settings, clients: int, tag: str) -> list[tuple[str, str, list[str]]]:
    """(token, project id, asset ids) per client, made directly in the database."""
    engine = create_engine(settings.database_url)
    made = []
    with engine.begin() as connection:
        session = Session(bind=connection)
        for n in range(clients):
            user_id = f"user_bench_{tag}_{n}"
            ensure_user(session, user_id)
            session.flush()
            project_id = session.execute(
                text("SELECT id FROM projects WHERE user_id = :u"), {"u": user_id}
            ).scalar_one()
            ids = [uuid.uuid4() for _ in range(ASSETS_PER_USER)]
            session.execute(insert(Asset), [
                {"id": i, "user_id": user_id, "type": "image", "storage_key": f"originals/bench/{i}.png",
                 "mime_type": "image/png", "size_bytes": 1, "status": "ready"} for i in ids
            ])  # fmt: skip
            made.append((make_dev_token(settings, user_id), str(project_id), [str(i) for i in ids]))
    engine.dispose()  # backends exit, so their statistics are flushed before the baseline is read
    return made


def statements_per_save(settings: Settings, elements: int, saves: int = 20) -> dict[str, float]:
    """Round trips, SQL statements, commits and pool checkouts per save, counted in the API process."""
    app = create_app(settings)
    engine = app.extensions["iskra"].engine
    counts: Counter[str] = Counter()
    connections: list = []

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn, _cursor, statement, *_rest):
        counts[f"sql {statement.split(None, 1)[0].upper()}"] += 1

    event.listen(engine, "commit", lambda _conn: counts.update(["commit"]))
    event.listen(engine.pool, "checkout", lambda *_: counts.update(["checkout"]))
    token, project_id, asset_ids = make_users(settings, 1, f"count{elements}")[0]
    bodies = [canvas(elements, asset_ids, variant) for variant in range(2)]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with tempfile.TemporaryFile() as trace:
        # Traced from the first connection on, so the statements psycopg prepares can be named later.
        @event.listens_for(engine.pool, "connect")
        def _trace(dbapi_connection, _record):
            trace_into(dbapi_connection.pgconn, trace)
            connections.append(dbapi_connection.pgconn)

        for _ in range(6):  # warm the pool, and let psycopg prepare its statements (after 5 executions)
            client.put(f"/v1/projects/{project_id}/state", data=bodies[1], headers=headers)
        warm_up = len(round_trips(traced_lines(connections, trace)))
        counts.clear()
        for n in range(saves):
            response = client.put(f"/v1/projects/{project_id}/state", data=bodies[n % 2], headers=headers)
            assert response.status_code == 200, response.json
        counts.update(f"trip {label}" for label in round_trips(traced_lines(connections, trace))[warm_up:])
        for pgconn in connections:
            pgconn.untrace()  # before the file closes: its descriptor number may be reused
    engine.dispose()
    return {key: value / saves for key, value in sorted(counts.items())}


def trace_into(pgconn, trace) -> None:
    """Have libpq log every protocol message of this connection into `trace`."""
    pgconn.trace(trace.fileno())
    pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)


def traced_lines(connections: list, trace) -> list[str]:
    """Every line traced so far: each connection's stream is flushed (untraced) and traced again."""
    for pgconn in connections:
        pgconn.untrace()
        trace_into(pgconn, trace)
    trace.seek(0)
    lines = [line.decode("latin-1") for line in trace]
    trace.seek(0, os.SEEK_END)
    return lines


def round_trips(trace) -> list[str]:
    """One label per client/server round trip in a libpq trace: the first statement the client sent in it."""
    labels, prepared, pending = [], {}, None
    for line in trace:
        fields = line.split("\t", 3)
        if len(fields) < 4:
            continue  # a continuation line of a multi-line statement
        direction, _length, message, rest = fields
        quoted = rest.split('"')  # Query: "text"; Parse: "name" "text"; Bind: "portal" "name"
        if direction == "F" and message in ("Query", "Parse"):
            statement = (quoted[1] if message == "Query" else quoted[3]).strip()
            label = "ping" if statement == ";" else (statement.split(None, 1) or ["?"])[0].upper()
            if message == "Parse" and quoted[1]:
                prepared[quoted[1]] = label  # psycopg prepares a statement after its 5th execution
            pending = pending or label
        elif direction == "F" and message == "Bind":
            pending = pending or prepared.get(quoted[3], "?")
        elif direction == "B" and message == "ReadyForQuery":
            labels.append(pending or "?")
            pending = None
    return labels


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(settings: Settings, workers: int, threads: int):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "REDIS_KEY_PREFIX": settings.redis_key_prefix, "ISKRA_DATA_DIR": str(settings.data_dir),
           "AUTH_MODE": "dev", "DEV_JWT_SECRET": settings.dev_jwt_secret.get_secret_value(),
           "SIGNING_SECRET": settings.signing_secret.get_secret_value(), "LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [str(Path(sys.executable).parent / "gunicorn"), "web.wsgi:app_from_environment()",
               "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread", "--threads", str(threads),
               "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def pg_stats(database: str) -> dict[str, int]:
    with psycopg.connect(SERVER_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT xact_commit, xact_rollback, tup_updated FROM pg_stat_database WHERE datname = %s",
            [database],
        ).fetchone()
    return {"xact_commit": row[0], "xact_rollback": row[1], "tup_updated": row[2]}


def run_clients(base: str, users, elements: int, seconds: float, etags: dict[str, str]) -> dict[str, object]:
    """Every user saves its own project back to back for `seconds`; raw latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(users) + 1)
    stop = threading.Event()

    def client(token: str, project_id: str, asset_ids: list[str]) -> None:
        bodies = [canvas(elements, asset_ids, variant) for variant in range(2)]
        http = requests.Session()
        url = f"{base}/v1/projects/{project_id}/state"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                   "If-Match": etags.get(project_id, '"0"')}  # fmt: skip
        mine, seen, n = [], Counter(), 0
        barrier.wait()
        while not stop.is_set():
            started = time.perf_counter()
            response = http.put(url, data=bodies[n % 2], headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            seen[response.status_code] += 1
            headers["If-Match"] = response.headers.get("ETag", headers["If-Match"])
            n += 1
        with lock:
            latencies.extend(mine)
            statuses.update(seen)
            etags[project_id] = headers["If-Match"]

    threads = [threading.Thread(target=client, args=user) for user in users]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "statuses": statuses, "elapsed": time.perf_counter() - started}


def summarize(runs: list[dict[str, object]]) -> dict[str, object]:
    """Throughput and latency percentiles over every round of one contender."""
    ordered = sorted(latency for run in runs for latency in run["latencies"])
    statuses = sum((run["statuses"] for run in runs), Counter())
    return {
        "saves": len(ordered),
        "statuses": dict(statuses),
        "saves_per_second": len(ordered) / sum(run["elapsed"] for run in runs),
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def clean_redis(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="load per contender per round")
    parser.add_argument("--rounds", type=int, default=2, help="the contenders alternate this many times")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, temporary_database() as (database, url):
        settings = bench_settings(url, Path(data_dir))
        try:
            results = compare(settings, database, args)
        finally:
            clean_redis(settings.redis_key_prefix)
    print_table(results, args)


def compare(settings: Settings, database: str, args: argparse.Namespace) -> dict[int, dict[str, object]]:
    """Both contenders under load in alternating rounds (a noisy neighbour's bursts hit both alike)."""
    contenders = (1000, 10)
    counted = {elements: statements_per_save(settings, elements) for elements in contenders}
    users = {elements: make_users(settings, args.clients, f"load{elements}") for elements in contenders}
    runs, pg_totals, etags = {n: [] for n in contenders}, {n: Counter() for n in contenders}, {}
    for _ in range(args.rounds):
        for elements in contenders:
            with gunicorn(settings, args.workers, args.threads) as base:
                before = pg_stats(database)
                runs[elements].append(run_clients(base, users[elements], elements, args.seconds, etags))
            time.sleep(1.5)  # exited backends flush their statistics
            after = pg_stats(database)
            pg_totals[elements].update({key: after[key] - before[key] for key in before})
    results = {}
    for elements in contenders:
        load = summarize(runs[elements])
        per_save = {key: value / load["saves"] for key, value in pg_totals[elements].items()}
        size = len(canvas(elements, users[elements][0][2], 0))
        results[elements] = {
            "body_bytes": size,
            **load,
            "in_process": counted[elements],
            "postgres": per_save,
        }
        print(json.dumps({elements: results[elements]}, indent=2), flush=True)
    return results


def print_table(results: dict, args: argparse.Namespace) -> None:
    big, small = results[1000], results[10]
    print(f"\n{args.clients} clients, gunicorn {args.workers} workers x {args.threads} threads, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s per contender, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print("| canvas | body | saves/s | p50 ms | p99 ms | statuses | round trips/save | SQL stmts/save "
          "| commits/save | checkouts/save | pg xact_commit/save | pg xact_rollback/save "
          "| pg tup_updated/save |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for elements, row in results.items():
        counted, pg = row["in_process"], row["postgres"]
        print(f"| {elements} elements | {row['body_bytes'] / 1024:.0f} KiB | {row['saves_per_second']:.0f} "
              f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['statuses']} | {_kinds(counted, 'trip')} "
              f"| {_kinds(counted, 'sql')} | {counted.get('commit', 0):g} | {counted.get('checkout', 0):g} "
              f"| {pg['xact_commit']:.2f} | {pg['xact_rollback']:.2f} "
              f"| {pg['tup_updated']:.2f} |")  # fmt: skip
    print(f"\n1000 vs 10 elements: throughput x{big['saves_per_second'] / small['saves_per_second']:.2f}, "
          f"p50 x{big['p50_ms'] / small['p50_ms']:.2f}")  # fmt: skip


def _kinds(counted: dict[str, float], prefix: str) -> str:
    """`5 (ping 1, BEGIN 1, ...)`: the total of one kind of count per save and its parts."""
    parts = {key.split(" ", 1)[1]: value for key, value in counted.items() if key.startswith(prefix + " ")}
    return f"{sum(parts.values()):g} ({', '.join(f'{name} {value:g}' for name, value in parts.items())})"


if __name__ == "__main__":
    main()
