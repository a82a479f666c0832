"""Send follow-up work after the request's transaction commits, carrying the request id along."""

from __future__ import annotations

from typing import Any

import structlog
from kombu.exceptions import OperationalError

from core import taskqueue
from web.requestid import current_request_id
from web.services import services

log = structlog.get_logger(__name__)


def enqueue(task_name: str, *args: Any, countdown: float | None = None) -> bool:
    """Send a task by its stable name (run no sooner than `countdown` s). Call only after commit.

    False, logged, when the broker cannot take it: the row is committed, so the client must not see an
    error (retrying would duplicate it); maintenance re-queues stalled assets and purges on its schedule.
    """
    request_id = current_request_id()
    headers = {"request_id": request_id} if request_id else None
    try:
        taskqueue.send(services().celery, task_name, *args, headers=headers, countdown=countdown)
    except OperationalError:
        log.warning("enqueue_failed", task=task_name, exc_info=True)
        return False
    return True
