"""A JWKS cache: keys kept a while, one refetch per cooldown for unknown kids, last good keys on failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import jwt
import requests
import structlog

log = structlog.get_logger(__name__)


class JwksUnavailable(Exception):
    """No usable key set: the endpoint failed and nothing good was cached."""


class JwksCache:
    """Signing keys by `kid`, fetched from a JWKS URL and refreshed lazily.

    PyJWT's PyJWKClient caches too, but raises when a refetch fails and has no unknown-kid cooldown;
    parsing stays PyJWT's (PyJWKSet), only the refresh policy lives here.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float = 600,
        refetch_cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.max_age = max_age_seconds
        self.cooldown = refetch_cooldown_seconds
        self.timeout = timeout_seconds
        self.clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.fetch_count = 0

    def key_for(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, refetching when stale or when the kid is new (once per cooldown)."""
        with self._lock:
            now = self.clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
            unknown = kid not in self._keys
            if (stale or unknown) and self._may_attempt(now):
                self._refresh(now)
            if not self._keys and self._fetched_at is None:
                raise JwksUnavailable(f"no keys could be fetched from {self.url}")
            return self._keys.get(kid)

    def _may_attempt(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.cooldown

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        self.fetch_count += 1
        try:
            response = requests.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            keys = signing_keys(response.json())
        except (requests.RequestException, ValueError, jwt.PyJWTError) as error:
            # Keep serving the last good keys: an outage at the issuer must not log everyone out.
            log.warning("jwks_fetch_failed", url=self.url, error=str(error), cached_keys=len(self._keys))
            return
        self._keys = keys
        self._fetched_at = now


def signing_keys(document: object) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by kid; ValueError when there are none."""
    # PyJWKSet trusts the document's shape; a malformed body must be a failed fetch, not a crash.
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS document has no `keys` list")
    usable = [entry for entry in entries if isinstance(entry, dict) and entry.get("use", "sig") == "sig"]
    key_set = jwt.PyJWKSet.from_dict({"keys": usable})
    keys = {key.key_id: key for key in key_set.keys if key.key_id}
    if not keys:
        raise ValueError("the JWKS document has no signing key with a kid")
    return keys
