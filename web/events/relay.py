"""The relay: LISTEN for committed events and append each to its user's stream, in commit order.

Every events process runs one; exactly one is active at a time, the holder of a session-level advisory
lock taken on its own LISTEN connection. The others are standbys: they LISTEN too and keep what they hear
until the active relay has recorded it as relayed (`events:relayed`, set atomically with each XADD). When
the active process or its connection dies, PostgreSQL releases the lock, a standby takes it within
STANDBY_SECONDS and first appends what it heard after the last relayed event, so a takeover loses nothing
and repeats nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
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
# A relay listens this long before it may take the lock, so after a crash a standby that heard the gap wins
# over the crashed process's fresh replacement, which did not.
LISTEN_FIRST_SECONDS = 2.0
RETRY_SECONDS = 1.0
# A standby forgets what it heard this long ago even if no relay recorded it (the active one is never
# that far behind unless Redis was down that long, and then a takeover relays what it still holds).
HELD_SECONDS = 300.0

# An asset id to its body as it now is, None when gone: for events whose body was too long to notify.
Reread = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True)
class Heard:
    """A notification a standby heard: when, its `n`, and the payload to relay if it takes over."""

    at: float
    name: str | None
    payload: str


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
            except Exception:  # a bug must not end relaying for every process: log it, start over
                log.exception("events_relay_failed")
                self._stopping.wait(RETRY_SECONDS)

    def _serve(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            # Listening before trying the lock: a standby hears everything from here on.
            connection.execute(f"LISTEN {CHANNEL}")
            heard: deque[Heard] = deque()
            may_take_over_at = time.monotonic() + LISTEN_FIRST_SECONDS
            try:
                while not self._stopping.is_set():
                    if not self.active.is_set():
                        self._forget_relayed(heard)
                        if time.monotonic() >= may_take_over_at:
                            self._try_to_take_over(connection, heard)
                    # Notifications arriving between two calls wait in psycopg's backlog, in order.
                    for notification in connection.notifies(timeout=STANDBY_SECONDS):
                        if self.active.is_set():
                            self.publish(notification.payload)
                        else:
                            name = decode(notification.payload).get("n")
                            heard.append(Heard(time.monotonic(), name, notification.payload))
            finally:
                self.active.clear()

    def _forget_relayed(self, heard: deque[Heard]) -> bool:
        """Drop what a relay appended already (up to its mark) and what is too old; False if Redis fails."""
        try:
            last = self.events.last_relayed()
        except redis.RedisError as error:
            log.warning("events_relay_redis_error", error=str(error))
            return False
        names = [item.name for item in heard]
        if last in names:
            # Relayed already, by the active relay (or by us before our connection was lost).
            for _ in range(names.index(last) + 1):
                heard.popleft()
        while heard and heard[0].at < time.monotonic() - HELD_SECONDS:
            heard.popleft()
        return True

    def _try_to_take_over(self, connection: psycopg.Connection, heard: deque[Heard]) -> None:
        """Take the lock and first append what this standby heard after the last relayed event."""
        locked = connection.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            return
        self.active.set()
        # Again, now that the previous relay is gone: it may have appended more since the last look.
        while not self._forget_relayed(heard):
            if self._stopping.wait(RETRY_SECONDS):
                return
        log.info("events_relay_active", caught_up=len(heard))
        while heard:
            self.publish(heard.popleft().payload)

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
                # One MULTI: the entry and the mark that it was relayed, so a standby never relays it again.
                pipeline = self.events.redis.pipeline(transaction=True)
                self.events.append(pipeline, event["u"], event["t"], data, event.get("n"))
                pipeline.execute()
                return
            except redis.RedisError as error:
                log.warning("events_relay_redis_error", error=str(error))
                if self._stopping.wait(RETRY_SECONDS):
                    return
