"""Task log context: every log line of a task carries its id, name and the request id that caused it."""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog
from celery.signals import setup_logging, task_postrun, task_prerun

from core.logs import configure_logging
from core.settings import Settings


def bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Bind the task's identity, and the `request_id` header the API sent it with, to structlog."""
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {"task_id": task_id, "task_name": getattr(task, "name", None)}
    # Celery exposes custom message headers as attributes of task.request.
    request_id = getattr(getattr(task, "request", None), "request_id", None)
    if request_id:
        context["request_id"] = request_id
    structlog.contextvars.bind_contextvars(**context)


def clear_task_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()


def follow_up_headers() -> dict[str, str]:
    """Headers for a task sent from inside a task, so the request id keeps following the work."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {"request_id": request_id} if request_id else {}


def keep_service_logging(settings: Settings, **_: Any) -> None:
    """Answer Celery's setup_logging, so it leaves our JSON handler and LOG_LEVEL alone."""
    # Otherwise the worker's `-l` (WARNING when omitted, as in the Procfile) would become the root
    # level and drop every info line tasks log, request ids and all.
    configure_logging(settings)


def connect_task_logging(settings: Settings) -> None:
    setup_logging.connect(partial(keep_service_logging, settings), weak=False)
    task_prerun.connect(bind_task_context, weak=False)
    task_postrun.connect(clear_task_context, weak=False)
