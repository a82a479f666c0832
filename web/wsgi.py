"""Entry for gunicorn: `gunicorn 'web.wsgi:app_from_environment()'`."""

from __future__ import annotations

from flask import Flask

from core.settings import Settings
from web.app import create_app


def app_from_environment() -> Flask:
    """The app configured from this process's environment."""
    app = create_app(Settings())
    # Built now so that a storage misconfiguration (no SIGNING_SECRET) stops gunicorn at boot, with its
    # message, rather than failing the first request that needs a download link.
    app.extensions["iskra"].storage  # noqa: B018
    return app
