"""The versioned API: one parent blueprint that authenticates every request under /v1."""

from __future__ import annotations

from flask import Blueprint, g, request

from models.errors import Unauthorized
from web.auth import bearer_token
from web.ratelimit import enforce_ip
from web.services import services
from web.views import assets, generations, me, projects


def _authenticate() -> None:
    # A CORS preflight never carries credentials; Flask answers it once this hook lets it through.
    if request.method == "OPTIONS":
        return
    token = bearer_token()
    if token is None:
        raise enforce_ip(Unauthorized("Send `Authorization: Bearer <token>`."))
    try:
        g.identity = services().authenticator.verify(token)
    except Unauthorized as refused:
        # Failed tokens count against the address too, so guessing tokens is throttled.
        raise enforce_ip(refused) from None


def make_v1() -> Blueprint:
    """A fresh /v1 blueprint with every resource registered under it."""
    v1 = Blueprint("v1", __name__, url_prefix="/v1")
    v1.before_request(_authenticate)
    for resource in (me, assets, projects, generations):
        v1.register_blueprint(resource.bp)
    return v1
