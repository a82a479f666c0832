"""Send follow-up work after the request's transaction commits, carrying the request id along."""

from __future__ import annotations

from typing import Any

from models import taskqueue
from web.requestid import current_request_id
from web.services import services


def enqueue(task_name: str, *args: Any, countdown: float | None = None) -> None:
    """Send a task by its stable name (run no sooner than `countdown` s). Call only after commit."""
    request_id = current_request_id()
    headers = {"request_id": request_id} if request_id else None
    taskqueue.send(services().celery, task_name, *args, headers=headers, countdown=countdown)
