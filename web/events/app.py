"""The events process's Flask app: the live stream beside the API, sharing its auth, errors and CORS."""

from __future__ import annotations

from flask import Flask

from core.logs import configure_logging
from core.settings import Settings
from web.accesslog import register_access_log
from web.app import make_services, serve_browsers
from web.db import register_session_teardown
from web.errors import register_error_handlers
from web.events import views
from web.events.live import Live, build_live
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
    # fetch-based clients send the token and their own Last-Event-ID; EventSource sends only the latter.
    serve_browsers(
        app,
        settings,
        allow_headers=["Authorization", "Last-Event-ID", "Cache-Control"],
        methods=["GET", "POST", "OPTIONS"],
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
