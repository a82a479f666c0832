"""The events process's Flask app: the live stream beside the API, sharing its auth, errors and CORS."""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from core.logs import configure_logging
from core.settings import Settings
from web.accesslog import register_access_log
from web.app import EXPOSED_HEADERS, exact_origin_patterns, make_services
from web.db import register_session_teardown
from web.errors import register_error_handlers
from web.events import views
from web.events.live import Live, build_live
from web.proxies import register_forwarded_for_warning
from web.requestid import register_request_id
from web.services import Services
from web.views import health


def create_events_app(settings: Settings, services: Services | None = None) -> Flask:
    """Build the events app for `settings`; its relay and hub run once `start_live(app)` is called."""
    configure_logging(settings)
    app = Flask("iskra-events")
    services = services or make_services(settings)
    app.extensions["iskra"] = services
    live: Live = build_live(services)
    app.extensions["iskra-events"] = live
    if settings.trusted_proxy_count:
        # As the API does (web.app): Flask documents wrapping wsgi_app; its type says method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count)  # type: ignore[method-assign]
    register_forwarded_for_warning(app, settings)
    CORS(
        app,
        origins=exact_origin_patterns(settings.cors_allowed_origins),
        expose_headers=EXPOSED_HEADERS,
        # fetch-based clients send the token and their own Last-Event-ID; EventSource sends only the latter.
        allow_headers=["Authorization", "Last-Event-ID", "Cache-Control", "X-Request-ID"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    register_request_id(app)
    register_access_log(app)
    register_error_handlers(app)
    register_session_teardown(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(views.bp)
    return app


def start_live(app: Flask) -> Live:
    """Start the app's relay (active or standby) and hub reader: once per process, after any fork."""
    return app.extensions["iskra-events"].start()
