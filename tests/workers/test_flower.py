"""Flower, as the Procfile runs it, sees a real task run by a real worker and keeps strangers out."""

from __future__ import annotations

import socket
import uuid

import pytest
import requests
from sqlalchemy import text

from models import taskqueue
from tests.processes import BIN, running, settings_env, wait_until, worker_command

pytestmark = pytest.mark.e2e
USER, PASSWORD = "operator", "flower-test-password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _flower_command(port: int, db: str) -> list[str]:
    return [
        str(BIN / "celery"), "-A", "workers.app", "flower", "--address=127.0.0.1", f"--port={port}",
        f"--basic-auth={USER}:{PASSWORD}", "--persistent=True", f"--db={db}",
    ]  # fmt: skip


def _get(url: str, **kwargs) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5, **kwargs)
    except requests.ConnectionError:
        return None


def test_flower_lists_a_task_a_real_worker_ran_and_refuses_requests_without_auth(settings, engine, tmp_path):
    ping_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    port, env = _free_port(), settings_env(settings)
    base, auth = f"http://127.0.0.1:{port}", (USER, PASSWORD)
    try:
        with (
            running(_flower_command(port, str(tmp_path / "flower.db")), env, tmp_path / "flower.log"),
            running(worker_command("maintenance"), env, tmp_path / "worker.log"),
        ):
            wait_until(lambda: _get(f"{base}/healthcheck"), timeout=60)
            # Flower's first inspect may precede the worker; refresh until it shows up.
            wait_until(
                lambda: (r := _get(f"{base}/api/workers?refresh=1", auth=auth)) and r.json(), timeout=60
            )
            taskqueue.send(taskqueue.make_client(settings), taskqueue.PING, str(ping_id))

            def finished_task() -> dict | None:
                response = _get(f"{base}/api/tasks", auth=auth)
                tasks = response.json() if response is not None and response.ok else {}
                return next(
                    (
                        t
                        for t in tasks.values()
                        if str(ping_id) in (t.get("args") or "") and t["state"] == "SUCCESS"
                    ),
                    None,
                )

            task = wait_until(finished_task, timeout=60)
            unauthenticated = _get(f"{base}/api/tasks")
            wrong_password = _get(f"{base}/api/tasks", auth=(USER, "wrong"))
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM worker_pings WHERE id = :id"), {"id": ping_id})

    assert task["name"] == taskqueue.PING
    assert task["routing_key"] == "maintenance"  # the queue, from the task-sent event
    assert task["runtime"] is not None and task["runtime"] >= 0
    assert task["worker"].startswith("test-")
    assert unauthenticated.status_code == 401
    assert wrong_password.status_code == 401
    assert list(tmp_path.glob("flower.db*")), "persistent state was not written"
