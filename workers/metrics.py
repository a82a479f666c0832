"""Task metrics from Celery signals: runs by outcome, failures, retries and durations by task name.

Prefork children write their values to files in PROMETHEUS_MULTIPROC_DIR. On a machine the API shares,
its /metrics merges them; elsewhere the worker serves them itself on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import structlog
from celery.signals import task_failure, task_postrun, task_prerun, task_retry, worker_init
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from core.settings import Settings

log = structlog.get_logger(__name__)

TASKS = Counter("iskra_tasks_total", "Tasks that finished, by final state", ["task", "state"])
FAILURES = Counter("iskra_task_failures_total", "Tasks that raised, by exception type", ["task", "exception"])
RETRIES = Counter("iskra_task_retries_total", "Task retries scheduled", ["task"])
# Labelled, like every metric here: a label-less counter would open its multiprocess file at import, before
# the worker has made PROMETHEUS_MULTIPROC_DIR.
MULTIPART_ABORTED = Counter(
    "iskra_multipart_uploads_aborted_total",
    "Direct uploads aborted by maintenance after lying incomplete",
    ["backend"],
)
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


def serve_worker_metrics(settings: Settings, **_: Any) -> None:
    """Serve the metrics of this worker and its pool children on WORKER_METRICS_PORT, when set."""
    if settings.worker_metrics_port is None:
        return
    if settings.prometheus_multiproc_dir is None:
        # Without the shared files the main process would serve zeros: its children do the counting.
        log.error("worker_metrics_not_served", reason="WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR")
        return
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.prometheus_multiproc_dir))
    try:
        start_http_server(settings.worker_metrics_port, settings.worker_metrics_address, registry=registry)
    except OSError as error:
        # A busy port costs the metrics, not the worker: tasks keep running.
        log.error("worker_metrics_not_served", port=settings.worker_metrics_port, error=str(error))
        return
    log.info("worker_metrics_served", port=settings.worker_metrics_port)


def connect_task_metrics(settings: Settings) -> None:
    """Count tasks in every process of this worker; serve them from the main process when configured."""
    if settings.prometheus_multiproc_dir is not None:
        # prometheus_client opens its value files there at the first increment; nothing else makes it.
        settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)
    worker_init.connect(partial(serve_worker_metrics, settings), weak=False)
    task_prerun.connect(_prerun, weak=False)
    task_postrun.connect(_postrun, weak=False)
    task_failure.connect(_failure, weak=False)
    task_retry.connect(_retry, weak=False)
