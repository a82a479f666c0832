"""The relay: LISTEN for committed events and append each to its user's stream, in commit order.

Every events process runs one; exactly one is active at a time, the holder of a session-level advisory
lock taken on its own LISTEN connection. When that process or its connection dies, PostgreSQL releases the
lock and a standby takes over within STANDBY_SECONDS. Events committed while no relay listens (that gap)
are not in the streams: docs/events.md says what a client sees then.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import redis
import structlog
from sqlalchemy.engine import make_url

from models.events import CHANNEL, decode
from models.presenters import Presented, Sign
from web.events.log import EventLog

log = structlog.get_logger(__name__)

# pg_try_advisory_lock's key for "the events relay" (any constant no other lock in this database uses).
LOCK_KEY = 0x49_736B_7261_5265  # "IskraRe"
STANDBY_SECONDS = 1.0
RETRY_SECONDS = 1.0

# An asset id to its body as it now is, None when gone: for events whose body was too long to notify.
Reread = Callable[[str], dict[str, Any] | None]


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as psycopg's own connection string."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Relay:
    def __init__(self, database_url: str, events: EventLog, sign: Sign, reread: Reread) -> None:
        self.dsn = libpq_url(database_url)
        self.events, self.sign, self.reread = events, sign, reread
        self.active = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events-relay", daemon=True)

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve()
            except psycopg.Error as error:
                log.warning("events_relay_database_error", error=str(error))
                self._stopping.wait(RETRY_SECONDS)

    def _serve(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            while not connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
                if self._stopping.wait(STANDBY_SECONDS):
                    return
            connection.execute(f"LISTEN {CHANNEL}")
            self.active.set()
            log.info("events_relay_active")
            try:
                while not self._stopping.is_set():
                    # Notifications arriving between two calls wait in libpq's buffer, in order.
                    for notification in connection.notifies(timeout=1.0):
                        self.publish(notification.payload)
            finally:
                self.active.clear()

    def publish(self, payload: str) -> None:
        """Append one notification's event to its user's stream; Redis outages are waited out, in order."""
        event = decode(payload)
        if "reread" in event:
            body = self.reread(event["reread"])
            if body is None:
                return  # deleted since: its delete event follows
        else:
            urls = {path: (key, content_type) for path, (key, content_type) in event.get("s", {}).items()}
            body = Presented(event["b"], urls).signed(self.sign)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        while True:
            try:
                pipeline = self.events.redis.pipeline(transaction=False)
                self.events.append(pipeline, event["u"], event["t"], data)
                pipeline.execute()
                return
            except redis.RedisError as error:
                log.warning("events_relay_redis_error", error=str(error))
                if self._stopping.wait(RETRY_SECONDS):
                    return
