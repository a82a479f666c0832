"""Autosave benchmark: full saves (PUT) and incremental saves (PATCH) against the API under gunicorn.

Contenders, side by side on one temporary database, every save moving one element (the canvas sends
that every second while someone drags): an incremental save of a 1,000-element canvas (~320 KB) as the API
does it (the named elements read under SELECT ... FOR UPDATE, the canvas rebuilt by PostgreSQL), as a
bench-only twin doing read-modify-write of the whole canvas under the lock, and as one applying it with
jsonb_set in one UPDATE (bench/autosave_twins.py); a full save of the same change; and a full save of a
10-element canvas. Each is run by N concurrent clients (own user, own project, If-Match chained from the
last ETag). Reports body size, saves/s and p50/p99 latency, then database work per save:
- on the wire: client/server round trips per save, from libpq's protocol trace (each ends in ReadyForQuery);
- in the API process: SQL statements, transactions and pool checkouts per save (SQLAlchemy events);
- in PostgreSQL: deltas of pg_stat_database (xact_commit, xact_rollback, tup_updated) and of the projects
  TOAST table's inserted chunks per save under load; and, for one save's statements replayed in rolled-back
  transactions, EXPLAIN (ANALYZE, BUFFERS, WAL) execution time and WAL bytes, and the statements' time as
  a client sees it (execution plus sending the rows).

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
from dataclasses import dataclass
from pathlib import Path

import jsonpatch
import psycopg
import redis
import requests
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.autosave_postgres import pg_stats, postgres_cost, round_trips, trace_into, traced_lines  # noqa: E402
from bench.autosave_twins import bench_app  # noqa: E402
from core.settings import Settings  # noqa: E402
from models import migrate  # noqa: E402
from models.tables import Asset  # noqa: E402
from models.users import ensure_user  # noqa: E402
from web.auth import make_dev_token  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ASSETS_PER_USER = 100
RUN = uuid.uuid4().hex[:8]


def canvas(count: int, asset_ids: list[str], variant: int) -> bytes:
    """A canvas of `count` image elements referencing the user's assets; `variant` moves the middle one."""
    moved = count // 2
    elements = [
        {"id": f"element-{n:04d}", "type": "image", "zIndex": n, "width": 512, "height": 384,
         "transform": {"x": (n % 40) * 530.0 + (7.5 * variant if n == moved else 0),
                       "y": (n // 40) * 400.0 + (3.25 * variant if n == moved else 0),
                       "scale": 0.75, "rotation": 0},
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


@dataclass(frozen=True)
class Contender:
    name: str
    elements: int
    path: str  # the save's URL path, formatted with the project id
    incremental: bool

    def bodies(self, asset_ids: list[str]) -> list[bytes]:
        """What the client sends, alternately: the element moved there and back (from variant 0)."""
        there, back = (canvas(self.elements, asset_ids, variant) for variant in (1, 0))
        if not self.incremental:
            return [there, back]
        # What fast-json-patch's compare(previous, next) sends: index-based paths, replaced values.
        before, after = json.loads(back), json.loads(there)
        return [
            jsonpatch.make_patch(a, b).to_string().encode() for a, b in ((before, after), (after, before))
        ]

    def request(self, body: bytes) -> tuple[str, dict[str, str]]:
        """The HTTP method and content type of one save."""
        if self.incremental:
            return "PATCH", {"Content-Type": "application/json-patch+json"}
        return "PUT", {"Content-Type": "application/json"}


CONTENDERS = (
    Contender("incremental 1,000 (the API)", 1000, "/v1/projects/{}/state", True),
    Contender("incremental 1,000 (whole-canvas RMW twin)", 1000, "/v1bench/projects/{}/state-whole", True),
    Contender("incremental 1,000 (jsonb_set twin)", 1000, "/v1bench/projects/{}/state-jsonb", True),
    Contender("full 1,000", 1000, "/v1/projects/{}/state", False),
    Contender("full 10", 10, "/v1/projects/{}/state", False),
)


def make_users(settings: Settings, clients: int, tag: str, elements: int) -> list[tuple[str, str, list[str]]]:
    """(token, project id, asset ids) per client, made directly in the database, canvas at variant 0."""
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
            asset_ids = [str(i) for i in ids]
            session.execute(
                text(
                    "UPDATE projects SET canvas_state = CAST(:raw AS jsonb), image_count = :n WHERE id = :id"
                ),
                {"raw": canvas(elements, asset_ids, 0).decode(), "n": elements, "id": project_id},
            )
            made.append((make_dev_token(settings, user_id), str(project_id), asset_ids))
    engine.dispose()  # backends exit, so their statistics are flushed before the baseline is read
    return made


def statements_per_save(
    settings: Settings, contender: Contender, tag: str, saves: int = 20
) -> tuple[dict, list]:
    """Round trips, SQL statements, commits and pool checkouts per save, counted in the API process,
    and the statements (with parameters) of the last save."""
    app = bench_app(settings)
    engine = app.extensions["iskra"].engine
    counts: Counter[str] = Counter()
    connections: list = []

    last_save: list[tuple[str, object]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(_conn, _cursor, statement, parameters, *_rest):
        counts[f"sql {statement.split(None, 1)[0].upper()}"] += 1
        last_save.append((statement, parameters))

    event.listen(engine, "commit", lambda _conn: counts.update(["commit"]))
    event.listen(engine.pool, "checkout", lambda *_: counts.update(["checkout"]))
    token, project_id, asset_ids = make_users(settings, 1, tag, contender.elements)[0]
    bodies = contender.bodies(asset_ids)
    client = app.test_client()
    url = contender.path.format(project_id)
    etag = '"0"'

    def save(body: bytes):
        nonlocal etag
        method, headers = contender.request(body)
        headers |= {"Authorization": f"Bearer {token}", "If-Match": etag}
        response = client.open(url, method=method, data=body, headers=headers)
        assert response.status_code == 200, response.json
        etag = response.headers["ETag"]

    with tempfile.TemporaryFile() as trace:
        # Traced from the first connection on, so the statements psycopg prepares can be named later.
        @event.listens_for(engine.pool, "connect")
        def _trace(dbapi_connection, _record):
            trace_into(dbapi_connection.pgconn, trace)
            connections.append(dbapi_connection.pgconn)

        for n in range(6):  # warm the pool, and let psycopg prepare its statements (after 5 executions)
            save(bodies[n % 2])
        warm_up = len(round_trips(traced_lines(connections, trace)))
        counts.clear()
        for n in range(saves):
            last_save.clear()
            save(bodies[n % 2])
        counts.update(f"trip {label}" for label in round_trips(traced_lines(connections, trace))[warm_up:])
        for pgconn in connections:
            pgconn.untrace()  # before the file closes: its descriptor number may be reused
    engine.dispose()
    return {key: value / saves for key, value in sorted(counts.items())}, [project_id, *last_save]


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
    command = [str(Path(sys.executable).parent / "gunicorn"), "bench.autosave_twins:bench_app()",
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


def run_clients(base: str, users, contender: Contender, seconds: float, etags: dict[str, str]) -> dict:
    """Every user saves its own project back to back for `seconds`; raw latencies and statuses."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(users) + 1)
    stop = threading.Event()

    def client(token: str, project_id: str, asset_ids: list[str]) -> None:
        bodies = contender.bodies(asset_ids)
        http = requests.Session()
        url = base + contender.path.format(project_id)
        headers = {"Authorization": f"Bearer {token}", "If-Match": etags.get(project_id, '"0"')}
        mine, seen, n = [], Counter(), 0
        barrier.wait()
        while not stop.is_set():
            method, sent = contender.request(bodies[n % 2])
            started = time.perf_counter()
            response = http.request(method, url, data=bodies[n % 2], headers=headers | sent, timeout=30)
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


def compare(settings: Settings, database: str, args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The contenders under load in alternating rounds (a noisy neighbour's bursts hit them alike)."""
    counted, costs, users = {}, {}, {}
    for number, contender in enumerate(CONTENDERS):
        counted[contender.name], captured = statements_per_save(settings, contender, f"count{number}")
        costs[contender.name] = postgres_cost(settings.database_url, captured)
        users[contender.name] = make_users(settings, args.clients, f"load{number}", contender.elements)
    runs = {c.name: [] for c in CONTENDERS}
    pg_totals, etags = {c.name: Counter() for c in CONTENDERS}, {}
    for _ in range(args.rounds):
        for contender in CONTENDERS:
            with gunicorn(settings, args.workers, args.threads) as base:
                before = pg_stats(SERVER_URL, database, settings.database_url)
                runs[contender.name].append(
                    run_clients(base, users[contender.name], contender, args.seconds, etags)
                )
            time.sleep(1.5)  # exited backends flush their statistics
            after = pg_stats(SERVER_URL, database, settings.database_url)
            pg_totals[contender.name].update({key: after[key] - before[key] for key in before})
    results = {}
    for contender in CONTENDERS:
        load = summarize(runs[contender.name])
        per_save = {key: value / load["saves"] for key, value in pg_totals[contender.name].items()}
        results[contender.name] = {
            "body_bytes": len(contender.bodies(users[contender.name][0][2])[0]),
            **load,
            "in_process": counted[contender.name],
            "postgres": per_save,
            "postgres_replayed": costs[contender.name],
        }
        print(json.dumps({contender.name: results[contender.name]}, indent=2), flush=True)
    return results


def print_table(results: dict, args: argparse.Namespace) -> None:
    print(f"\n{args.clients} clients, gunicorn {args.workers} workers x {args.threads} threads, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s per contender, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print("| save | body | saves/s | p50 ms | p99 ms | statuses | round trips/save | SQL stmts/save "
          "| commits/save | checkouts/save | pg xact_commit/save | pg xact_rollback/save "
          "| pg tup_updated/save | TOAST chunks written/save |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        counted, pg = row["in_process"], row["postgres"]
        print(f"| {name} | {_size(row['body_bytes'])} | {row['saves_per_second']:.0f} "
              f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['statuses']} | {_kinds(counted, 'trip')} "
              f"| {_kinds(counted, 'sql')} | {counted.get('commit', 0):g} | {counted.get('checkout', 0):g} "
              f"| {pg['xact_commit']:.2f} | {pg['xact_rollback']:.2f} "
              f"| {pg['tup_updated']:.2f} | {pg['toast_chunks']:.1f} |")  # fmt: skip
    print("\nOne save's statements replayed in rolled-back transactions (medians):")
    print(
        "| save | stored canvas (jsonb, compressed) | canvas as text | server execution ms | "
        "client-observed statements ms | WAL bytes | WAL full-page images | shared blocks dirtied |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, row in results.items():
        cost = row["postgres_replayed"]
        print(f"| {name} | {_size(cost['stored_bytes'])} | {_size(cost['text_bytes'])} "
              f"| {cost['server_ms']:.2f} | {cost['client_ms']:.2f} | {cost['wal_bytes']:,.0f} "
              f"| {cost['wal_fpi']:g} | {cost['blocks_dirtied']:g} |")  # fmt: skip
    small = results[CONTENDERS[-1].name]
    print()
    for name, row in results.items():
        print(
            f"{name} / full 10: saves/s x{row['saves_per_second'] / small['saves_per_second']:.2f}, "
            f"p50 x{row['p50_ms'] / small['p50_ms']:.2f}, p99 x{row['p99_ms'] / small['p99_ms']:.2f}"
        )


def _size(count: float) -> str:
    return f"{count / 1024:.1f} KiB" if count >= 1024 else f"{count:.0f} B"


def _kinds(counted: dict[str, float], prefix: str) -> str:
    """`5 (ping 1, BEGIN 1, ...)`: the total of one kind of count per save and its parts."""
    parts = {key.split(" ", 1)[1]: value for key, value in counted.items() if key.startswith(prefix + " ")}
    return f"{sum(parts.values()):g} ({', '.join(f'{name} {value:g}' for name, value in parts.items())})"


if __name__ == "__main__":
    main()
