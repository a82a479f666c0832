"""Each user's recent events in a Redis Stream: appended by the relay, replayed on resume, read by the hub.

Stream entry ids (`<ms>-<seq>`, increasing per stream) are the SSE event ids. A stream keeps its last
EVENTS_KEPT_PER_USER entries (trimmed approximately, never below that) and expires EVENTS_KEPT_SECONDS
after its newest entry, which covers SPEC §11's "the last hour or the last 1,000 events".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.settings import Settings

EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


@dataclass(frozen=True)
class Entry:
    id: str
    type: str
    data: str


def id_key(event_id: str) -> tuple[int, int]:
    """An entry id as a comparable pair."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


class EventLog:
    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.prefix = f"{settings.redis_key_prefix}events:user:"
        self.relayed_key = f"{settings.redis_key_prefix}events:relayed"
        self.kept = settings.events_kept_per_user
        self.ttl = settings.events_kept_seconds

    def key(self, user_id: str) -> str:
        return f"{self.prefix}{user_id}"

    def user_of(self, key: str | bytes) -> str:
        text = key.decode() if isinstance(key, bytes) else key
        return text.removeprefix(self.prefix)

    def append(
        self, pipeline: Any, user_id: str, event_type: str, data: str, notification: str | None
    ) -> None:
        """Queue the XADD of one event, the stream's new expiry and the relayed mark on `pipeline`."""
        key = self.key(user_id)
        pipeline.xadd(key, {"t": event_type, "d": data}, maxlen=self.kept, approximate=True)
        pipeline.expire(key, self.ttl)
        if notification is not None:
            pipeline.set(self.relayed_key, notification, ex=self.ttl)

    def last_relayed(self) -> str | None:
        """The id (`n`) of the last notification any relay appended."""
        value = self.redis.get(self.relayed_key)
        return value.decode() if isinstance(value, bytes) else value

    def latest_id(self, user_id: str) -> str | None:
        """The newest entry's id, or None when the user has no kept events."""
        newest = self.redis.xrevrange(self.key(user_id), count=1)
        return _text(newest[0][0]) if newest else None

    def holds(self, user_id: str, event_id: str) -> bool:
        """Whether `event_id` is still kept: a resume from it loses nothing."""
        return bool(EVENT_ID.match(event_id)) and bool(
            self.redis.xrange(self.key(user_id), event_id, event_id, count=1)
        )

    def after(self, user_id: str, event_id: str) -> list[Entry]:
        """The kept entries after `event_id`, oldest first."""
        kept = self.redis.xrange(self.key(user_id), f"({event_id}")
        return [entry(raw_id, fields) for raw_id, fields in kept]


def entry(raw_id: str | bytes, fields: dict) -> Entry:
    """An entry as redis-py returns it (bytes or text)."""
    decoded = {_text(name): _text(value) for name, value in fields.items()}
    return Entry(_text(raw_id), decoded["t"], decoded["d"])


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
