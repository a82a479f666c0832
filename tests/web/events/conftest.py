"""A real events process (gunicorn, gthread) for the stream tests, and committing sessions to feed it."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.users import ensure_user
from tests.processes import BIN, ROOT, running, settings_env, wait_until
from web.auth import make_dev_token

PING_SECONDS = 0.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def events_command(port: int, threads: int = 64) -> list[str]:
    """The Procfile's `events` line, bound to 127.0.0.1:`port`."""
    return [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--worker-class", "gthread", "--threads", str(threads),
            "--graceful-timeout", "2", "web.events.wsgi:app_from_environment()"]  # fmt: skip


def answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting
        return False


@dataclass(frozen=True)
class EventsServer:
    port: int
    log_path: Path

    def relaying(self) -> bool:
        return "events_relay_active" in self.log_path.read_text(errors="replace")


def start_events_server(settings: Settings, log_path: Path, **env: str):
    """A running events process (a context manager) whose relay is listening once it is entered."""
    port = free_port()
    environment = {
        **settings_env(settings),
        "EVENTS_PING_SECONDS": str(PING_SECONDS),
        # Every test client is 127.0.0.1: the refusals tested here must not be throttled by the whole suite's.
        "RATE_LIMIT_OVERRIDES": json.dumps(
            {"default": {"ip": {"perMinute": None, "perHour": None, "perDay": None}}}
        ),
        **env,
    }
    process = running(events_command(port), environment, log_path)
    return port, process


@pytest.fixture
def events_server(settings: Settings, tmp_path: Path) -> Iterator[EventsServer]:
    port, process = start_events_server(settings, tmp_path / "events.log")
    server = EventsServer(port, tmp_path / "events.log")
    with process:
        wait_until(lambda: answers(port), timeout=30)
        wait_until(server.relaying, timeout=30)
        yield server


@pytest.fixture
def committing(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions whose commits are real (the relay hears them); every row is removed afterwards."""
    yield sessionmaker(engine, expire_on_commit=False)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE users, assets, projects, worker_pings, pending_deletions CASCADE"))


@pytest.fixture
def new_user(committing: sessionmaker[Session], settings: Settings) -> Callable[[], tuple[str, dict]]:
    """A user created (and committed) now, and the Authorization header of their token.

    With `relayed` (a running relay), only once the user's own first event is relayed.
    """

    def make(relayed: bool = True) -> tuple[str, dict[str, str]]:
        user_id = f"user_{uuid.uuid4().hex[:12]}"
        with committing.begin() as session:
            ensure_user(session, user_id)
        if relayed:
            # The first project's event is in the user's stream: streams opened from now on start after it.
            stream = f"{settings.redis_key_prefix}events:user:{user_id}"
            wait_until(lambda: redis.Redis.from_url(settings.redis_url).xlen(stream), timeout=30)
        return user_id, {"Authorization": f"Bearer {make_dev_token(settings, user_id)}"}

    return make
