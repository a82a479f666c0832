"""One reader per events process: XREAD BLOCK over the streams of the users connected here, fanned out.

Open streams cost a queue each, not a Redis connection: the reader holds one connection, blocks on every
connected user's stream at once, and hands each entry to the queues of that user's open streams. A new
subscription wakes the reader (an entry on a stream of this hub's own) so its key joins the next XREAD.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from collections import defaultdict
from typing import Any

import redis
import structlog

from web.events.log import Entry, EventLog, entry, id_key

log = structlog.get_logger(__name__)

BLOCK_MS = 5000
BATCH = 500
# A stream this far behind is closed; its client resumes from its Last-Event-ID without a gap.
MAX_BACKLOG = 2000
CLOSED = None


class Subscription:
    """One open stream: the entries after `after` arrive on `queue` (CLOSED when the hub lets it go)."""

    def __init__(self, user_id: str, after: str) -> None:
        self.user_id, self.after = user_id, after
        self.queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()


class Hub:
    def __init__(self, reader: Any, events: EventLog) -> None:
        self.reader, self.events = reader, events
        self.wake_key = f"{events.prefix.removesuffix('user:')}wake:{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[Subscription]] = defaultdict(set)
        self._cursors: dict[str, str] = {}
        self._wake_cursor = "0-0"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="events-hub", daemon=True)

    def start(self) -> Hub:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake()
        self._thread.join(timeout)
        with self._lock:
            for subscriptions in self._subscriptions.values():
                for subscription in subscriptions:
                    subscription.queue.put(CLOSED)

    def open_streams(self) -> int:
        with self._lock:
            return sum(len(subscriptions) for subscriptions in self._subscriptions.values())

    def subscribe(self, user_id: str) -> Subscription:
        """Everything appended to the user's stream after the returned subscription's `after` reaches it."""
        with self._lock:
            if user_id not in self._cursors:
                self._cursors[user_id] = self.events.latest_id(user_id) or "0-0"
            subscription = Subscription(user_id, self._cursors[user_id])
            self._subscriptions[user_id].add(subscription)
        self._wake()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subscriptions = self._subscriptions.get(subscription.user_id)
            if subscriptions is None:
                return
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._subscriptions[subscription.user_id]
                del self._cursors[subscription.user_id]

    def _wake(self) -> None:
        try:
            self.events.redis.xadd(self.wake_key, {"w": "1"}, maxlen=10, approximate=False)
            self.events.redis.expire(self.wake_key, 3600)
        except redis.RedisError as error:  # the reader is failing too and retries with the new keys
            log.warning("events_hub_wake_failed", error=str(error))

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                streams = {self.events.key(user_id): cursor for user_id, cursor in self._cursors.items()}
            streams[self.wake_key] = self._wake_cursor
            try:
                replies = self.reader.xread(streams, count=BATCH, block=BLOCK_MS)
            except redis.RedisError as error:
                log.warning("events_hub_read_failed", error=str(error))
                self._stopping.wait(1.0)
                continue
            try:
                self._dispatch(replies or [])
            except Exception:  # one malformed entry must not stop every stream of this process
                log.exception("events_hub_dispatch_failed")
        with contextlib.suppress(redis.RedisError):
            self.events.redis.delete(self.wake_key)

    def _dispatch(self, replies: list) -> None:
        with self._lock:
            for raw_key, raw_entries in replies:
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if key == self.wake_key:
                    last_id = raw_entries[-1][0]
                    self._wake_cursor = last_id.decode() if isinstance(last_id, bytes) else last_id
                    continue
                entries = [entry(raw_id, fields) for raw_id, fields in raw_entries]
                user_id = self.events.user_of(key)
                if user_id not in self._cursors:
                    continue  # everyone left while the read was blocked
                for item in entries:
                    for subscription in self._subscriptions[user_id]:
                        if subscription.queue.qsize() < MAX_BACKLOG:
                            subscription.queue.put(item)
                        else:
                            subscription.queue.put(CLOSED)
                if id_key(entries[-1].id) > id_key(self._cursors[user_id]):
                    self._cursors[user_id] = entries[-1].id
