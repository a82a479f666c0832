"""Maintenance tasks on the `maintenance` queue."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

from celery import shared_task
from sqlalchemy import update

from models import taskqueue
from models.tables import WorkerPing
from workers.context import current


@shared_task(name=taskqueue.PING, soft_time_limit=10, time_limit=20)
def ping(ping_id: str) -> None:
    """Stamp a ping row done: proves broker, worker and database are wired together."""
    with current().sessions.begin() as session:
        session.execute(
            update(WorkerPing)
            .where(WorkerPing.id == uuid.UUID(ping_id), WorkerPing.completed_at.is_(None))
            .values(completed_at=datetime.now(UTC), worker=socket.gethostname())
        )
