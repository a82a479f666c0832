"""The engine: pooled connections, and server-side prepared statements off behind PgBouncer."""

from __future__ import annotations

from sqlalchemy import text

from models.db import make_engine

PREPARED_HERE = text("SELECT count(*) FROM pg_prepared_statements")


def _prepared_after_repeating_a_query(settings) -> int:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            for number in range(10):
                connection.execute(text("SELECT :n + 1"), {"n": number})
            return connection.scalar(PREPARED_HERE) or 0
    finally:
        engine.dispose()


def test_by_default_psycopg_prepares_a_query_the_connection_runs_often(settings):
    assert _prepared_after_repeating_a_query(settings) >= 1


def test_behind_pgbouncer_no_statement_is_left_prepared_on_the_server(settings):
    # In transaction mode the next transaction may run on another server, which never saw the PREPARE.
    behind_pooler = settings.model_copy(update={"database_pgbouncer": True})

    assert _prepared_after_repeating_a_query(behind_pooler) == 0
