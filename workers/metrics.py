"""Task metrics from Celery signals: runs by outcome, failures, retries and durations by task name.

Prefork children write to the same PROMETHEUS_MULTIPROC_DIR as the API, whose /metrics merges them.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry
from prometheus_client import Counter, Histogram

TASKS = Counter("iskra_tasks_total", "Tasks that finished, by final state", ["task", "state"])
FAILURES = Counter("iskra_task_failures_total", "Tasks that raised, by exception type", ["task", "exception"])
RETRIES = Counter("iskra_task_retries_total", "Task retries scheduled", ["task"])
DURATION = Histogram(
    "iskra_task_duration_seconds",
    "Time a task ran",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
_started: dict[str, float] = {}


def _prerun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _postrun(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id or "", None)
    name = getattr(task, "name", "unknown")
    TASKS.labels(name, state or "UNKNOWN").inc()
    if started is not None:
        DURATION.labels(name).observe(time.perf_counter() - started)


def _failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    FAILURES.labels(getattr(sender, "name", "unknown"), type(exception).__name__).inc()


def _retry(sender: Any = None, **_: Any) -> None:
    RETRIES.labels(getattr(sender, "name", "unknown")).inc()


def connect_task_metrics() -> None:
    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)
    task_failure.connect(_failure, weak=False)
    task_retry.connect(_retry, weak=False)
