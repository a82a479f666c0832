"""One way to declare a task, and one retry policy for all of them.

Transient storage and network errors (StorageError: boto's and the disk's failures, translated) are
retried with exponential backoff and jitter, up to TRANSIENT_RETRIES times; nothing else is retried,
because everything else is either the input's fault (recorded on the row) or a bug (which must show).
Every task has an explicit stable name and soft and hard time limits; results are ignored (state lives
on the rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task, current_task, shared_task

from models.errors import StorageError

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (StorageError,)
TRANSIENT_RETRIES = 5


class IskraTask(Task):
    """The service's tasks: transient errors retried with backoff, everything else raised once."""

    autoretry_for = TRANSIENT_ERRORS
    max_retries = TRANSIENT_RETRIES
    retry_backoff = True
    retry_backoff_max = 60
    retry_jitter = True


def task(name: str, *, soft_time_limit: int, time_limit: int, base: type[Task] = IskraTask) -> Callable:
    """Declare a task under its stable `name` with its time limits and the one retry policy."""
    return shared_task(name=name, base=base, soft_time_limit=soft_time_limit, time_limit=time_limit)


def is_last_try() -> bool:
    """Whether the running task has no retry left, as its own request says (False outside a task)."""
    running: Any = current_task
    if not running or running.request.called_directly:  # the proxy is falsy outside a task
        return False
    return running.request.retries >= running.max_retries
