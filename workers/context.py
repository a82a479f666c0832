"""What a worker process holds: settings, a session factory, storage and a task client, built once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import taskqueue
from core.settings import Settings
from models.db import make_engine, make_sessionmaker
from models.storage import Storage, make_storage


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage | Any

    @cached_property
    def redis(self) -> Any:
        """A client of the service's Redis (the project-render schedule), made on first use."""
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=2, socket_connect_timeout=2)

    @cached_property
    def celery(self) -> Celery:
        """A client for the follow-up tasks a task sends (made on first use)."""
        return taskqueue.make_client(self.settings)


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
