"""The Celery wiring: a real worker process consumes a real queue and writes to the database."""

from __future__ import annotations

import json
import uuid

import pytest
from celery import Celery
from sqlalchemy import text

from core import taskqueue
from tests.processes import running, settings_env, wait_until, worker_app_facts, worker_command

pytestmark = pytest.mark.e2e


def test_a_real_worker_completes_a_ping_sent_through_the_broker(settings, engine, tmp_path):
    ping_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    try:
        with running(worker_command("maintenance"), settings_env(settings), tmp_path / "worker.log"):
            taskqueue.send(taskqueue.make_client(settings), taskqueue.PING, str(ping_id))

            def completed():
                with engine.connect() as connection:
                    return connection.scalar(
                        text("SELECT worker FROM worker_pings WHERE id = :id AND completed_at IS NOT NULL"),
                        {"id": ping_id},
                    )

            assert wait_until(completed, timeout=60)
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM worker_pings WHERE id = :id"), {"id": ping_id})


def test_task_names_route_to_their_queues():
    assert taskqueue.queue_for(taskqueue.MAKE_IMAGE_RENDITIONS) == "images"
    assert taskqueue.queue_for(taskqueue.MAKE_VIDEO_RENDITIONS) == "videos"
    assert taskqueue.queue_for(taskqueue.RECONCILE_STORAGE) == "maintenance"
    with pytest.raises(ValueError, match="no known queue"):
        taskqueue.queue_for("elsewhere.task")


def test_ping_arguments_survive_a_json_round_trip():
    arguments = [str(uuid.uuid4())]

    assert json.loads(json.dumps(arguments)) == arguments
    uuid.UUID(arguments[0])


def test_worker_settings_hand_back_work_of_a_dying_worker(settings):
    conf = taskqueue.configure(Celery("probe", set_as_current=False), settings).conf

    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > taskqueue.LONGEST_TASK_SECONDS
    assert conf.task_serializer == "json" and conf.task_ignore_result


def test_every_task_has_a_soft_limit_below_its_hard_limit_and_the_broker_outwaits_them_all(settings):
    limits = worker_app_facts(
        settings,
        "{n: [t.soft_time_limit, t.time_limit]"
        " for n, t in w.app.tasks.items() if not n.startswith('celery.')}",
    )
    conf = taskqueue.configure(Celery("probe", set_as_current=False), settings).conf

    assert taskqueue.MAKE_IMAGE_RENDITIONS in limits and taskqueue.RENDER_PROJECT_THUMBNAIL in limits
    for name, (soft, hard) in limits.items():
        assert soft and hard and 0 < soft < hard <= taskqueue.LONGEST_TASK_SECONDS, name
    # A task still inside its hard limit is never redelivered to a second worker.
    assert conf.broker_transport_options["visibility_timeout"] > max(hard for _, hard in limits.values())
