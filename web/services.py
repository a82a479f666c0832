"""The long-lived collaborators a running app holds, built once per app (storage and limiter on first use)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from celery import Celery
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.storage.signing import hourly_window

if TYPE_CHECKING:
    from models.idempotency import IdempotencyKeys
    from models.ratelimit import RateLimiter
    from models.storage import Storage
    from web.auth import Authenticator


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    authenticator: Authenticator
    redis: Any
    storage_override: Storage | None = field(default=None)

    @cached_property
    def storage(self) -> Storage:
        from models.storage import make_storage

        return self.storage_override or make_storage(self.settings)

    @cached_property
    def limiter(self) -> RateLimiter:
        from models.ratelimit import RateLimiter

        return RateLimiter(self.redis, self.settings)

    @cached_property
    def idempotency_keys(self) -> IdempotencyKeys:
        from models.idempotency import IdempotencyKeys

        return IdempotencyKeys(self.redis, self.settings.redis_key_prefix)

    def signed_url(self, key: str | None, content_type: str | None = None) -> str | None:
        """A download URL for `key`, the same all clock hour, valid at least SIGNED_URL_TTL_SECONDS; served
        as `content_type` (None: as the object was stored)."""
        if key is None:
            return None
        window = hourly_window(time.time(), self.settings.signed_url_ttl_seconds)
        return self.storage.url(
            key, expires_in=window.expires_in, content_type=content_type, signed_at=window.signed_at
        )


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["iskra"]
