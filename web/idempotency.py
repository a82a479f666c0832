"""Idempotency-Key on the POSTs that create or charge: a retry gets the first answer, not a second effect.

`@idempotent` claims the key before the view runs, with a fingerprint of the method, the path and
query, and the raw body. A multipart upload is fingerprinted by what it says, not by its framing (a
browser picks a new multipart boundary for each attempt): its view calls `claim_idempotency` with
`web.uploads.upload_digest` once the body has arrived, before anything is stored or charged.

Kept and replayed for 24 h: every 2xx and 4xx answer, except 409 (a conflict may resolve) and 429 (a
limit resets). Never kept: 5xx (507 quota exceeded and 503 included), so a retry can still succeed.
The one gap: a process that dies between its commit and keeping the answer leaves no answer, and a
retry after the lock expires runs again (the kept answers live in Redis, not in the transaction).

Put `@idempotent` outside `@api.validate`: spectree checks what the view returns against the route's
success schema, which a replayed refusal does not match.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, g, request

from models.errors import DomainError, InvalidIdempotencyKey
from models.idempotency import Claim, KeptResponse
from web.auth import current_identity
from web.services import services

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEPT_HEADERS = ("Content-Type", "Location", "ETag")
NOT_KEPT = frozenset({409, 429})


@dataclass
class _Pending:
    key: str
    claim: Claim | None = None


class _Replay(Exception):
    """Raised through the view to answer with the kept response."""

    def __init__(self, kept: KeptResponse) -> None:
        self.kept = kept


def idempotent(view: Callable[..., Any]) -> Callable[..., Response]:
    """Decorate a POST view so that an Idempotency-Key makes it run once per user and key within 24 h."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Response:
        key = _idempotency_key()
        if key is None:
            return view(*args, **kwargs)
        g.idempotency = pending = _Pending(key)
        try:
            if request.mimetype != "multipart/form-data":
                claim_idempotency(lambda: hashlib.sha256(request.get_data(cache=True)).hexdigest())
            response = current_app.make_response(view(*args, **kwargs))
        except _Replay as replay:
            return _replayed(replay.kept)
        except DomainError as refusal:
            response = current_app.make_response(current_app.handle_user_exception(refusal))
        except BaseException:
            if pending.claim is not None:
                services().idempotency_keys.settle(pending.claim, None)
            raise
        if pending.claim is not None:
            services().idempotency_keys.settle(pending.claim, _kept(pending.claim, response))
        return response

    guarded.idempotent = True  # type: ignore[attr-defined]  # read by web/openapi.py
    return guarded


def claim_idempotency(body_digest: Callable[[], str]) -> None:
    """In an `@idempotent` view: run for this request's key, or answer a retry (no-op without a key).

    `body_digest` is called only when there is a key to claim: most requests carry none, and hashing a
    whole upload for nothing costs ~3 ms of CPU per 4 MB.
    """
    pending: _Pending | None = g.get("idempotency")
    if pending is None or pending.claim is not None:
        return
    query = request.query_string.decode("latin-1")
    # A route reachable under several paths (a direct upload's ticket endpoint and its Bearer twin) names
    # the one path they share, so a retry through either is the same request.
    path = g.get("idempotency_path") or request.path
    fingerprint = hashlib.sha256(f"{request.method} {path}?{query}\n{body_digest()}".encode()).hexdigest()
    outcome = services().idempotency_keys.claim(current_identity().user_id, pending.key, fingerprint)
    if isinstance(outcome, KeptResponse):
        raise _Replay(outcome)
    pending.claim = outcome


def _idempotency_key() -> str | None:
    if HEADER not in request.headers:
        return None
    key = request.headers[HEADER]
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
        raise InvalidIdempotencyKey(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters.")
    return key


def _kept(claim: Claim, response: Response) -> KeptResponse | None:
    if response.status_code >= 500 or response.status_code in NOT_KEPT:
        return None
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    return KeptResponse(claim.fingerprint, response.status_code, headers, response.get_data(as_text=True))


def _replayed(kept: KeptResponse) -> Response:
    response = Response(kept.body, status=kept.status, headers=kept.headers)
    response.headers[REPLAYED_HEADER] = "true"
    return response
