"""The long-lived collaborators a running app holds, built once in create_app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery import Celery
from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.settings import Settings

if TYPE_CHECKING:
    from web.auth import Authenticator


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    celery: Celery
    authenticator: Authenticator
    redis: Any
    storage: Any = None
    limiter: Any = None


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["iskra"]
