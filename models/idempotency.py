"""Idempotency keys in Redis: the first final response to a key is kept 24 h; a running one locks it.

One key per user and Idempotency-Key holds the kept response; a second, short-lived key is the lock
of a first request still running. Claiming (read the kept response, else take the lock) and settling
(keep the response, drop the lock) are each one atomic script, so two requests racing with one key
never both run. The lock expires after LOCK_TTL_SECONDS, so a process that died mid-request frees it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import structlog

from models.errors import IdempotencyKeyInUse, IdempotencyKeyReused, IdempotencyUnavailable

CLAIM_SCRIPT = (Path(__file__).with_name("idempotency_claim.lua")).read_text()
SETTLE_SCRIPT = (Path(__file__).with_name("idempotency_settle.lua")).read_text()
RESPONSE_TTL_SECONDS = 24 * 3600
# Longer than any request's work after its body has arrived (a large original's put to storage).
LOCK_TTL_SECONDS = 300

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class KeptResponse:
    """What a first request answered: replayed as is to a retry."""

    fingerprint: str
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Claim:
    """This request runs for its key; settle it when its response is final."""

    kept_key: str
    lock_key: str
    lock_value: str
    fingerprint: str


class IdempotencyKeys:
    """Claims and settles Idempotency-Keys per user, in Redis (keys under REDIS_KEY_PREFIX)."""

    def __init__(self, redis_client: Any, key_prefix: str) -> None:
        self.redis, self.key_prefix = redis_client, key_prefix
        self._claim = redis_client.register_script(CLAIM_SCRIPT)
        self._settle = redis_client.register_script(SETTLE_SCRIPT)

    def claim(self, user_id: str, idempotency_key: str, fingerprint: str) -> Claim | KeptResponse:
        """The kept response to replay, or a claim to run under.

        Raises IdempotencyKeyReused when the key went with another request, IdempotencyKeyInUse while
        the first request with it still runs, IdempotencyUnavailable when Redis cannot be reached.
        """
        # User ids are printable and keys printable ASCII: a newline cannot occur in either.
        digest = hashlib.sha256(f"{user_id}\n{idempotency_key}".encode()).hexdigest()[:32]
        kept_key = f"{self.key_prefix}idempotency:{{{digest}}}"
        claim = Claim(kept_key, f"{kept_key}:lock", f"{secrets.token_hex(8)} {fingerprint}", fingerprint)
        try:
            state, value = self._claim(
                keys=[claim.kept_key, claim.lock_key], args=[claim.lock_value, LOCK_TTL_SECONDS * 1000]
            )
        except redis.RedisError as error:
            raise IdempotencyUnavailable("Idempotency keys cannot be checked; try again.") from error
        if state == b"claimed":
            return claim
        held_fingerprint = _fingerprint_of(state, value)
        if held_fingerprint != fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was sent with another request.")
        if state == b"running":
            raise IdempotencyKeyInUse("A request with this Idempotency-Key is still running; retry later.")
        return KeptResponse(**json.loads(value))

    def settle(self, claim: Claim, response: KeptResponse | None) -> None:
        """Keep `response` for RESPONSE_TTL_SECONDS (None: keep nothing) and free the key's lock."""
        kept = json.dumps(asdict(response)) if response is not None else ""
        try:
            self._settle(
                keys=[claim.kept_key, claim.lock_key], args=[claim.lock_value, kept, RESPONSE_TTL_SECONDS]
            )
        except redis.RedisError:
            # The work is done and answered; only a retry after a lost answer would run it again.
            log.warning("idempotency_response_not_kept", exc_info=True)


def _fingerprint_of(state: bytes, value: bytes) -> str:
    if state == b"running":
        return value.decode().partition(" ")[2]
    return json.loads(value)["fingerprint"]
