"""The request id that caused a task follows it into the worker's JSON log lines."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
import structlog
from sqlalchemy import text

from core import taskqueue
from models.asset_lifecycle import create_import
from models.storage import make_storage
from models.users import ensure_user
from tests.processes import running, settings_env, wait_until, worker_command
from tests.queues import take
from tests.workers.remote_files import remote_files
from workers import context
from workers.imports import import_remote
from workers.task_logging import bind_task_context, clear_task_context, follow_up_headers


def _task(request_id: str | None) -> SimpleNamespace:
    return SimpleNamespace(name="maintenance.ping", request=SimpleNamespace(request_id=request_id))


def test_a_task_binds_its_id_name_and_the_request_id_header_for_its_log_lines():
    structlog.contextvars.bind_contextvars(request_id="left-over-from-before")

    bind_task_context(task_id="t-1", task=_task("req-12345678"))

    assert structlog.contextvars.get_contextvars() == {
        "task_id": "t-1",
        "task_name": "maintenance.ping",
        "request_id": "req-12345678",
    }
    assert follow_up_headers() == {"request_id": "req-12345678"}
    clear_task_context()
    assert structlog.contextvars.get_contextvars() == {}


def test_a_task_sent_without_a_request_id_logs_none_from_an_earlier_task():
    bind_task_context(task_id="t-1", task=_task("req-12345678"))

    bind_task_context(task_id="t-2", task=_task(None))

    assert "request_id" not in structlog.contextvars.get_contextvars()
    assert follow_up_headers() == {}
    clear_task_context()


def _without_log_level(command: list[str]) -> list[str]:
    """The worker as the Procfile starts it: no `-l`, so LOG_LEVEL alone decides what is logged."""
    at = command.index("-l")
    return command[:at] + command[at + 2 :]


@pytest.mark.e2e
def test_a_real_worker_logs_the_request_id_the_task_was_sent_with(settings, engine, tmp_path):
    ping_id, request_id = uuid.uuid4(), f"req-{uuid.uuid4().hex}"
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    log_path = tmp_path / "worker.log"

    def task_lines() -> list[dict]:
        lines = (json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{"))
        return [line for line in lines if line.get("request_id") == request_id]

    try:
        with running(_without_log_level(worker_command("maintenance")), settings_env(settings), log_path):
            client = taskqueue.make_client(settings)
            taskqueue.send(client, taskqueue.PING, str(ping_id), headers={"request_id": request_id})
            lines = wait_until(task_lines, timeout=60)
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM worker_pings WHERE id = :id"), {"id": ping_id})

    assert all(line["task_name"] == taskqueue.PING for line in lines)
    assert any("succeeded" in line["event"] for line in lines)


def test_an_import_passes_its_request_id_on_to_the_renditions_it_queues(
    settings, sessions, session, redis_client
):
    chosen = settings.model_copy(update={"import_allow_http": True, "import_allow_loopback": True})
    previous = context._current
    context.install(
        context.WorkerContext(
            settings=chosen, engine=None, sessions=sessions, storage=make_storage(chosen),
        )
    )  # fmt: skip
    try:
        with remote_files() as server:
            ensure_user(session, "user_import_request_id")
            asset = create_import(
                session, user_id="user_import_request_id", asset_type="image",
                source_url=server.url("/image.jpg"), generation={},
            )  # fmt: skip
            session.commit()
            bind_task_context(task_id="t-import", task=_task("req-import-0000001"))
            import_remote(str(asset.id))
    finally:
        clear_task_context()
        context._current = previous

    sent = take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, str(asset.id))
    assert [message.headers.get("request_id") for message in sent] == ["req-import-0000001"]
