"""Stream tickets: what a browser's EventSource, which cannot send headers, presents instead of a token.

Opaque, bound to the user who asked, single use (GETDEL), valid TICKET_SECONDS.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

TICKET_SECONDS = 60
_TICKET = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Tickets:
    def __init__(self, redis: Any, key_prefix: str) -> None:
        self.redis, self.prefix = redis, f"{key_prefix}events:ticket:"

    def issue(self, user_id: str) -> tuple[str, int]:
        """A new ticket for `user_id` and when it expires (epoch milliseconds)."""
        ticket = secrets.token_urlsafe(32)
        self.redis.set(f"{self.prefix}{ticket}", user_id, ex=TICKET_SECONDS)
        return ticket, int((time.time() + TICKET_SECONDS) * 1000)

    def redeem(self, ticket: str) -> str | None:
        """The user the ticket was issued to, once; None when unknown, used or expired."""
        if not _TICKET.match(ticket):
            return None
        user_id = self.redis.getdel(f"{self.prefix}{ticket}")
        return user_id.decode() if isinstance(user_id, bytes) else user_id
