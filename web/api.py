"""The versioned API: one parent blueprint that authenticates every request under /v1."""

from __future__ import annotations

from flask import Blueprint, g, request

from models.errors import DomainError, Unauthorized
from web.auth import Identity, bearer_token
from web.ratelimit import enforce_ip
from web.services import services
from web.views import assets, generations, me, projects, uploads_direct

# RFC 6750: a 401 names the scheme, and says when the token itself was the problem.
CHALLENGE = 'Bearer realm="iskra"'
CHALLENGE_INVALID = 'Bearer realm="iskra", error="invalid_token"'


def _refuse(refused: Unauthorized, challenge: str) -> DomainError:
    refused.headers["WWW-Authenticate"] = challenge
    return enforce_ip(refused)


def refuse_credential(detail: str) -> DomainError:
    """The 401 for a credential other than a bearer token (a stream ticket) that proved nothing."""
    return _refuse(Unauthorized(detail), CHALLENGE_INVALID)


def _authenticate() -> None:
    # A CORS preflight never carries credentials; Flask answers it once this hook lets it through.
    if request.method == "OPTIONS":
        return
    g.identity = verify_bearer()


def verify_bearer() -> Identity:
    """The identity the request's bearer token proves, or the 401 (counted against the caller's address)."""
    token = bearer_token()
    if token is None:
        raise _refuse(Unauthorized("Send `Authorization: Bearer <token>`."), CHALLENGE)
    try:
        return services().authenticator.verify(token)
    except Unauthorized as refused:
        # Failed tokens count against the address too, so guessing tokens is throttled.
        raise _refuse(refused, CHALLENGE_INVALID) from None


def make_v1() -> Blueprint:
    """A fresh /v1 blueprint with every resource registered under it."""
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(_authenticate)
    for resource in (me, assets, projects, generations, uploads_direct):
        v1.register_blueprint(resource.bp)
    return v1
