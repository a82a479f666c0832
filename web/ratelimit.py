"""Rate limits at the HTTP edge: who the subject is, refusing with 429, and the budget headers."""

from __future__ import annotations

import functools
import ipaddress
import math
from collections.abc import Callable
from typing import Any

from flask import Response, g, make_response, request
from sqlalchemy import select

from models.errors import DomainError, RateLimited
from models.ratelimit import Decision
from models.tables import User
from web.auth import current_identity
from web.db import db
from web.services import services


def client_ip() -> str:
    """The caller's address: the socket's, or with TRUSTED_PROXY_COUNT the one our proxies saw (ProxyFix)."""
    return request.remote_addr or "unknown"


def ip_subject(address: str) -> str:
    """The bucket an address counts against: IPv6 by /64, since one host usually owns a whole /64."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return f"ip:{address}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"ip:{parsed.ipv4_mapped}"
        return f"ip:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"ip:{parsed}"


def enforce(class_name: str, subject: str, plan: str | None = None) -> Decision:
    """Count this request against `class_name`, raising 429 when a window is full."""
    decision = services().limiter.hit(class_name, subject, plan)
    if not decision.allowed:
        window = decision.refused
        assert window is not None
        error = RateLimited(
            f"Too many {class_name} requests {_phrase(window.window.name)}.",
            **{"class": class_name, "window": window.window.name, "limit": window.window.limit},
            retryAfter=_retry_after_seconds(decision),
        )
        error.headers.update(headers(decision))
        raise error
    g.rate_limit = decision
    return decision


def enforce_for_user(class_name: str, user_id: str) -> Decision:
    """`enforce` for the signed-in caller; their plan is read only when some plan has its own numbers."""
    plan = _plan_of(user_id) if services().limiter.needs_plan(class_name) else None
    return enforce(class_name, f"user:{user_id}", plan)


def enforce_ip(unauthenticated: DomainError) -> DomainError:
    """Count an unauthenticated request against its address; a 429 replaces the error when over."""
    decision = enforce("ip", ip_subject(client_ip()))
    unauthenticated.headers.update(headers(decision))
    return unauthenticated


def rate_limited(class_name: str) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Decorate a /v1 view: the caller's request counts against `class_name`, budget headers on success."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Response:
            decision = enforce_for_user(class_name, current_identity().user_id)
            return with_headers(make_response(view(*args, **kwargs)), decision)

        limited.rate_limit_class = class_name  # type: ignore[attr-defined]  # read by web/openapi.py
        return limited

    return decorate


def with_headers(response: Response, decision: Decision) -> Response:
    response.headers.update(headers(decision))
    return response


def headers(decision: Decision) -> dict[str, str]:
    """X-RateLimit-* (what the frontend reads) and RateLimit-Policy / RateLimit (IETF draft 07 syntax)."""
    tightest = decision.tightest
    if tightest is None:
        return {}
    reset = _retry_after_seconds(decision) if decision.refused else math.ceil(tightest.reset_ms / 1000)
    found = {
        "X-RateLimit-Limit": str(tightest.window.limit),
        "X-RateLimit-Remaining": str(tightest.remaining),
        "X-RateLimit-Period": tightest.window.name,
        "RateLimit-Policy": ", ".join(f"{s.window.limit};w={s.window.seconds}" for s in decision.windows),
        "RateLimit": f"limit={tightest.window.limit}, remaining={tightest.remaining}, reset={reset}",
    }
    if decision.refused:
        found["Retry-After"] = str(_retry_after_seconds(decision))
    return found


def _retry_after_seconds(decision: Decision) -> int:
    return max(1, math.ceil(decision.retry_after_ms / 1000))


def _phrase(window_name: str) -> str:
    return {"perMinute": "per minute", "perHour": "per hour", "perDay": "per day"}[window_name]


def _plan_of(user_id: str) -> str:
    # Its own short transaction: the view opens the request's transaction afterwards.
    with db().begin():
        return db().scalar(select(User.tier).where(User.user_id == user_id)) or "free"
