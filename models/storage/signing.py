"""Signing download links: the hourly window every backend dates them by, and the local HMAC tokens."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer

from models.errors import InvalidDownloadLink
from models.storage.keys import validate_key

_SALT = "iskra.storage.local-download"
HOUR = 3600


@dataclass(frozen=True)
class SigningWindow:
    """When a URL is dated (`signed_at`) and for how long it is valid from then (`expires_in`), in seconds."""

    signed_at: int
    expires_in: int

    @property
    def expires_at(self) -> int:
        return self.signed_at + self.expires_in


def hourly_window(now: float, ttl_seconds: int) -> SigningWindow:
    """Date URLs at the start of the clock hour and let them expire `ttl` (in whole hours) after its end.

    Every signing within one clock hour then makes the same URL (browsers keep their cached copy), and
    a URL handed out at any moment of the hour still has more than `ttl_seconds` to live: signed at
    10:59:59 with a one-hour TTL, it is valid until 12:00.
    """
    signed_at = int(now) // HOUR * HOUR
    return SigningWindow(signed_at, HOUR + max(1, math.ceil(ttl_seconds / HOUR)) * HOUR)


@dataclass(frozen=True)
class DownloadGrant:
    key: str
    content_type: str | None
    expires_at: int


class DownloadSigner:
    """Makes and checks tokens that carry a key, an optional content type and an absolute expiry."""

    def __init__(self, secret: str) -> None:
        # The expiry travels in the signed payload (not TimestampSigner's max_age): each URL has its own.
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        self.secret = secret

    def sign(
        self, key: str, *, expires_in: int, content_type: str | None = None, signed_at: int | None = None
    ) -> str:
        """A URL-safe token granting `key` for `expires_in` seconds from `signed_at` (default: now).

        The token is a pure function of its arguments, so signing again as of the same moment gives it again.
        """
        start = int(time.time()) if signed_at is None else signed_at
        payload = {"k": validate_key(key), "e": start + int(expires_in)}
        if content_type:
            payload["t"] = content_type
        return self._serializer.dumps(payload)

    def verify(self, token: str) -> DownloadGrant:
        """The grant in `token`; raises InvalidDownloadLink when tampered, malformed or expired."""
        try:
            payload = self._serializer.loads(token)
            grant = DownloadGrant(validate_key(payload["k"]), payload.get("t"), int(payload["e"]))
        except (BadData, KeyError, TypeError, ValueError) as error:
            raise InvalidDownloadLink() from error
        if grant.expires_at <= time.time():
            raise InvalidDownloadLink("The download link has expired")
        return grant
