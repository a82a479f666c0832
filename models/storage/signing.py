"""Expiring, HMAC-signed download tokens for the local backend (itsdangerous, keyed by SIGNING_SECRET)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer

from models.errors import InvalidDownloadLink
from models.storage.keys import validate_key

_SALT = "iskra.storage.local-download"


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

    def sign(self, key: str, *, expires_in: int, content_type: str | None = None) -> str:
        """A URL-safe token granting `key` for `expires_in` seconds."""
        payload = {"k": validate_key(key), "e": int(time.time()) + int(expires_in)}
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
