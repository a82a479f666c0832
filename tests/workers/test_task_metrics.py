"""Task metrics from Celery's signals: runs by state, failures by exception, retries, durations."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import REGISTRY

from workers import metrics

TASK = SimpleNamespace(name="tests.metrics_probe")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_finished_task_is_counted_by_state_and_timed():
    runs = _value("iskra_tasks_total", task=TASK.name, state="SUCCESS")
    timed = _value("iskra_task_duration_seconds_count", task=TASK.name)

    metrics._prerun(task_id="t-1", task=TASK)
    metrics._postrun(task_id="t-1", task=TASK, state="SUCCESS")

    assert _value("iskra_tasks_total", task=TASK.name, state="SUCCESS") == runs + 1
    assert _value("iskra_task_duration_seconds_count", task=TASK.name) == timed + 1
    assert "t-1" not in metrics._started


def test_failures_are_counted_by_exception_type_and_retries_by_task():
    failures = _value("iskra_task_failures_total", task=TASK.name, exception="TimeoutError")
    retries = _value("iskra_task_retries_total", task=TASK.name)

    metrics._failure(sender=TASK, exception=TimeoutError("slow"))
    metrics._retry(sender=TASK)

    assert _value("iskra_task_failures_total", task=TASK.name, exception="TimeoutError") == failures + 1
    assert _value("iskra_task_retries_total", task=TASK.name) == retries + 1
