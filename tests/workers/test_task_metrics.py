"""Task metrics from Celery's signals: runs by state, failures by exception, retries, durations."""

from __future__ import annotations

import socket
import uuid
from types import SimpleNamespace

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from core import taskqueue
from tests.processes import running, settings_env, wait_until, worker_command
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(url: str) -> dict[tuple[str, frozenset], float]:
    try:
        body = requests.get(url, timeout=5).text
    except requests.RequestException:  # refused while starting, or slow to boot under load
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _ping_counts(samples: dict) -> tuple[float, float, float, float]:
    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset({("task", taskqueue.PING), *labels.items()})), 0.0)

    return (
        value("iskra_tasks_total", state="SUCCESS"),
        value("iskra_tasks_total", state="FAILURE"),
        value("iskra_task_failures_total", exception="ValueError"),
        value("iskra_task_duration_seconds_count"),
    )


@pytest.mark.e2e
def test_a_prefork_worker_reports_its_childrens_tasks_on_its_port_and_through_the_api(
    settings, engine, app, client, tmp_path
):
    metrics_dir = tmp_path / "metrics"  # not created: the worker must make it
    port, ping_id = _free_port(), uuid.uuid4()
    worker_settings = settings.model_copy(
        update={"prometheus_multiproc_dir": metrics_dir, "worker_metrics_port": port}
    )
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    try:
        with running(worker_command("maintenance", concurrency=2), settings_env(worker_settings),
                     tmp_path / "worker.log"):  # fmt: skip
            sender = taskqueue.make_client(settings)
            taskqueue.send(sender, taskqueue.PING, str(ping_id))
            taskqueue.send(sender, taskqueue.PING, "not-a-uuid")  # raises ValueError in the worker
            from_worker = wait_until(
                lambda: (s := _scrape(f"http://127.0.0.1:{port}/metrics")) and _ping_counts(s)[3] == 2 and s,
                timeout=60,
            )
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM worker_pings WHERE id = :id"), {"id": ping_id})
    # On a machine it shares with the worker, the API's /metrics merges the same files.
    services = app.extensions["iskra"]
    services.settings = services.settings.model_copy(update={"prometheus_multiproc_dir": metrics_dir})
    from_api = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
    }

    assert _ping_counts(from_worker) == (1, 1, 1, 2)
    assert _ping_counts(from_api) == (1, 1, 1, 2)
