"""Flower, as the Procfile runs it, sees a real task run by a real worker and keeps strangers out."""

from __future__ import annotations

import socket
import subprocess
import uuid

import pytest
import requests
from honcho.environ import parse_procfile
from sqlalchemy import text

from core import taskqueue
from tests.processes import ROOT, running, settings_env, wait_until, worker_command

pytestmark = pytest.mark.e2e
USER, PASSWORD = "operator", "flower-test-password"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _procfile_flower() -> list[str]:
    """The Procfile's flower line, run the way honcho runs it."""
    return ["sh", "-c", parse_procfile((ROOT / "Procfile").read_text()).processes["flower"]]


def _get(url: str, **kwargs) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5, **kwargs)
    except requests.RequestException:  # refused while starting, or slow to boot under load
        return None


def _finished_ping(base: str, ping_id: uuid.UUID | str, state: str = "SUCCESS") -> dict | None:
    response = _get(f"{base}/api/tasks", auth=(USER, PASSWORD))
    tasks = response.json() if response is not None and response.ok else {}
    return next(
        (t for t in tasks.values() if str(ping_id) in (t.get("args") or "") and t["state"] == state),
        None,
    )


def test_flower_lists_a_task_a_real_worker_ran_keeps_it_across_a_restart_and_refuses_strangers(
    settings, engine, tmp_path
):
    ping_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    port = _free_port()
    env = {
        **settings_env(settings),
        "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}",
        "FLOWER_PORT": str(port),
        "ISKRA_DATA_DIR": str(tmp_path),
    }
    base = f"http://127.0.0.1:{port}"
    try:
        with (
            running(_procfile_flower(), env, tmp_path / "flower.log"),
            running(worker_command("maintenance"), env, tmp_path / "worker.log"),
        ):
            wait_until(lambda: _get(f"{base}/healthcheck"), timeout=60)
            # Flower's first inspect may precede the worker; refresh until it shows up.
            wait_until(
                lambda: (r := _get(f"{base}/api/workers?refresh=1", auth=(USER, PASSWORD))) and r.json(),
                timeout=60,
            )
            client = taskqueue.make_client(settings)
            taskqueue.send(client, taskqueue.PING, str(ping_id))
            taskqueue.send(client, taskqueue.PING, "not-a-ping-id")  # raises ValueError in the worker
            task = wait_until(lambda: _finished_ping(base, ping_id), timeout=60)
            failed = wait_until(lambda: _finished_ping(base, "not-a-ping-id", "FAILURE"), timeout=60)
            unauthenticated = _get(f"{base}/api/tasks")
            wrong_password = _get(f"{base}/api/tasks", auth=(USER, "wrong"))
        # A new Flower on the same state file, with no worker running, still knows the task.
        with running(_procfile_flower(), env, tmp_path / "flower-again.log"):
            wait_until(lambda: _get(f"{base}/healthcheck"), timeout=60)
            remembered = wait_until(lambda: _finished_ping(base, ping_id), timeout=30)
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM worker_pings WHERE id = :id"), {"id": ping_id})

    assert task["name"] == taskqueue.PING
    assert task["routing_key"] == "maintenance"  # the queue, from the task-sent event
    assert task["runtime"] is not None and task["runtime"] >= 0
    assert task["worker"].startswith("test-")
    assert (failed["routing_key"], failed["exception"].split("(")[0]) == ("maintenance", "ValueError")
    assert unauthenticated.status_code == 401
    assert wrong_password.status_code == 401
    assert remembered["uuid"] == task["uuid"]
    assert list(tmp_path.glob("flower.db*")), "the state was not kept in ISKRA_DATA_DIR"


def test_the_procfile_refuses_to_start_flower_without_credentials(settings):
    env = {key: value for key, value in settings_env(settings).items() if key != "FLOWER_BASIC_AUTH"}

    finished = subprocess.run(_procfile_flower(), env=env, capture_output=True, text=True, timeout=30)

    assert finished.returncode != 0
    assert "set FLOWER_BASIC_AUTH to user:password" in finished.stderr
