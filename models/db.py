"""Engine and session factory; nothing connects until first used."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings


def make_engine(settings: Settings, **overrides: object) -> Engine:
    """An engine for the configured database, with pre-ping so restarts of Postgres heal."""
    options: dict[str, object] = {
        "pool_pre_ping": True,
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_pool_size,
    }
    if settings.database_pgbouncer:
        # psycopg prepares a query server-side from its 5th run on a connection; a pooler in transaction
        # mode would run the next EXECUTE on a server that never saw the PREPARE.
        options["connect_args"] = {"prepare_threshold": None}
    options.update(overrides)
    return create_engine(settings.database_url, **options)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit, so views can serialize what they wrote."""
    return sessionmaker(engine, expire_on_commit=False)
