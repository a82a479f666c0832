"""The Flask application factory."""

from __future__ import annotations

import re
from typing import Any

import redis
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from core import taskqueue
from core.logs import configure_logging
from core.settings import Settings
from models.db import make_engine, make_sessionmaker
from web.accesslog import register_access_log
from web.api import make_v1
from web.auth import Authenticator
from web.db import register_session_teardown
from web.errors import register_error_handlers
from web.metrics import register_metrics
from web.openapi import register_openapi
from web.proxies import register_forwarded_for_warning
from web.requestid import register_request_id
from web.services import Services
from web.views import files, health, uploads_direct

EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Period",
    "RateLimit-Policy",
    "RateLimit",
    "WWW-Authenticate",
    "Idempotent-Replayed",
]


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that a body nested too deeply to parse is malformed JSON rather than a crash."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Flask and spectree treat ValueError as a body that is not JSON (400 or a validation failure).
            raise ValueError("the JSON body is nested too deeply") from None


def make_services(settings: Settings) -> Services:
    """The collaborators an app process holds, built from `settings` (nothing connects yet)."""
    engine = make_engine(settings)
    return Services(
        settings=settings,
        engine=engine,
        sessions=make_sessionmaker(engine),
        celery=taskqueue.make_client(settings),
        authenticator=Authenticator(settings),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2),
    )


def exact_origin_patterns(origins: tuple[str, ...]) -> list[re.Pattern[str]]:
    """Each origin as a pattern that matches only itself (case-insensitively, as hosts compare)."""
    # flask-cors reads any string holding `[`, `?`, `*`… as an unanchored regex: `https://[2001:db8::1]`
    # would be a character class admitting `https://bad.example`. Compiled patterns are used as given.
    return [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]


def serve_browsers(app: Flask, settings: Settings, *, allow_headers: list[str], methods: list[str]) -> None:
    """What every browser-facing app of the service shares: the client address and CORS for exact origins."""
    if settings.trusted_proxy_count:
        # The address our outermost proxy saw becomes request.remote_addr, for rate limits and logs alike,
        # and the scheme and host the client used make the absolute URLs we hand out (direct-upload part
        # URLs, Location); X-Forwarded-* from anyone else is never read. (Flask documents wrapping
        # wsgi_app for middleware; its type says method.)
        hops = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    register_forwarded_for_warning(app, settings)
    CORS(
        app,
        origins=exact_origin_patterns(settings.cors_allowed_origins),
        expose_headers=EXPOSED_HEADERS,
        allow_headers=[*allow_headers, "X-Request-ID"],
        methods=methods,
        max_age=600,
    )


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """Build the API for `settings`; nothing connects until a request needs it."""
    configure_logging(settings)
    app = Flask("iskra")
    # No body but an upload (which sets its own per-request limit) may outgrow the largest canvas state.
    app.config.update(
        MAX_FORM_MEMORY_SIZE=64 * 1024,
        MAX_CONTENT_LENGTH=settings.max_project_state_bytes,
        JSON_SORT_KEYS=False,
    )
    app.json = BoundedJSONProvider(app)
    app.extensions["iskra"] = services or make_services(settings)
    serve_browsers(
        app,
        settings,
        allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match", "Idempotency-Key"],
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    )
    register_request_id(app)
    register_metrics(app)
    register_access_log(app)
    register_error_handlers(app)
    register_session_teardown(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(make_v1())
    app.register_blueprint(uploads_direct.ticket_bp)
    register_openapi(app)
    return app
