"""Entry for gunicorn: `gunicorn 'web.wsgi:app_from_environment()'`."""

from __future__ import annotations

from flask import Flask

from core.settings import Settings
from web.app import create_app


def app_from_environment() -> Flask:
    """The app configured from this process's environment."""
    return create_app(Settings())
