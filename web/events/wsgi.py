"""Entry for gunicorn: `gunicorn 'web.events.wsgi:app_from_environment()'` (Procfile `events`)."""

from __future__ import annotations

from flask import Flask

from core.settings import Settings
from web.events.app import create_events_app, start_live


def app_from_environment() -> Flask:
    """The events app configured from this process's environment, its relay and hub running."""
    app = create_events_app(Settings())
    start_live(app)
    return app
