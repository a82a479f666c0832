"""PostgreSQL's side of the autosave benchmark: wire round trips, statistics deltas, replayed statements."""

from __future__ import annotations

import os
import statistics
import time

import psycopg
from psycopg.pq import Trace
from psycopg.types.string import TextLoader


def postgres_cost(database_url: str, captured: list, repeats: int = 15) -> dict[str, float]:
    """One save's statements replayed in rolled-back transactions: PostgreSQL's own cost, medians."""
    project_id, *statements = captured
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    explained, observed = [], []
    with psycopg.connect(url) as connection:
        # The client's share as psycopg sees it, without parsing the canvas into Python objects.
        connection.adapters.register_loader("jsonb", TextLoader)
        for _ in range(repeats):
            for explain in (True, False):
                with connection.transaction(force_rollback=True):
                    # Back to the revision the save expected, so its UPDATE matches the row again.
                    connection.execute(
                        "UPDATE projects SET revision = revision - 1 WHERE id = %s", [project_id]
                    )
                    started, plans = time.perf_counter(), []
                    for statement, parameters in statements:
                        prefix = "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " if explain else ""
                        rows = connection.execute(prefix + statement, parameters).fetchall()
                        if explain:
                            plans.append(rows[0][0][0])
                    elapsed = time.perf_counter() - started
                (explained if explain else observed).append(plans if explain else elapsed)
        stored = connection.execute(
            "SELECT pg_column_size(canvas_state), octet_length(canvas_state::text) "
            "FROM projects WHERE id = %s",
            [project_id],
        ).fetchone()

    def per_save(key: str) -> float:
        return statistics.median(sum(plan["Plan"].get(key, 0) for plan in plans) for plans in explained)

    return {
        "server_ms": statistics.median(sum(p["Execution Time"] for p in plans) for plans in explained),
        "client_ms": 1000 * statistics.median(observed),
        "wal_bytes": per_save("WAL Bytes"),
        "wal_fpi": per_save("WAL FPI"),
        "blocks_dirtied": per_save("Shared Dirtied Blocks"),
        "stored_bytes": stored[0],
        "text_bytes": stored[1],
    }


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


def pg_stats(server_url: str, database: str, database_url: str) -> dict[str, int]:
    """Cumulative counters of the bench database: transactions, updated rows, TOAST chunks written."""
    with psycopg.connect(server_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT xact_commit, xact_rollback, tup_updated FROM pg_stat_database WHERE datname = %s",
            [database],
        ).fetchone()
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as connection:
        # Each save of a large canvas writes it anew into TOAST chunks of up to ~2 KB each.
        toast = connection.execute(
            "SELECT n_tup_ins FROM pg_stat_all_tables "
            "WHERE relid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'projects')"
        ).fetchone()
    return {"xact_commit": row[0], "xact_rollback": row[1], "tup_updated": row[2], "toast_chunks": toast[0]}
