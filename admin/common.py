"""What every admin command needs: a short-lived database session factory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.db import make_engine, make_sessionmaker


@contextmanager
def open_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a one-connection engine that is closed when the command ends."""
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
