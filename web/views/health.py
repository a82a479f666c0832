"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import text

from core import taskqueue
from web.errors import problem
from web.services import services

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez():
    """The process answers."""
    return {"status": "ok"}


def _ping_database() -> None:
    with services().engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _ping_broker() -> None:
    # The broker Celery publishes to (RabbitMQ, or Redis under the transport's own settings), opened
    # afresh: a pooled connection may look open after the broker has gone.
    taskqueue.broker_connection(services().celery).release()


def _checks() -> dict[str, str]:
    app = services()
    probes = {
        "database": _ping_database,
        "redis": app.redis.ping,
        "broker": _ping_broker,
        "storage": lambda: app.storage.check(),
    }
    found: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
            found[name] = "ok"
        except Exception as error:
            found[name] = f"error: {type(error).__name__}"
    return found


@bp.get("/readyz")
def readyz():
    """Database, Redis, the task broker and storage all answer."""
    checks = _checks()
    if all(state == "ok" for state in checks.values()):
        return {"status": "ok", "checks": checks}
    return problem(503, "not-ready", "A dependency is not ready", checks=checks)
