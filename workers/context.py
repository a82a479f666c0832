"""What a worker process holds: settings, a session factory and storage, built once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.db import make_engine, make_sessionmaker
from models.storage import make_storage


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Any = None
    celery: Any = None


_current: WorkerContext | None = None


def install(context: WorkerContext) -> WorkerContext:
    """Make `context` the one tasks in this process use (the entry does this; tests too)."""
    global _current
    _current = context
    return context


def build(settings: Settings) -> WorkerContext:
    """A context for `settings`; the engine connects lazily, after the worker has forked."""
    engine = make_engine(settings, pool_size=2, max_overflow=2)
    return WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        storage=make_storage(settings),
    )


def current() -> WorkerContext:
    if _current is None:
        raise RuntimeError("no worker context installed; start workers through workers.app")
    return _current
