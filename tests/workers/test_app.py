"""The Celery wiring: a real worker process consumes a real queue and writes to the database."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import text

from core import taskqueue
from tests.processes import running, settings_env, wait_until, worker_app_facts, worker_command

pytestmark = pytest.mark.e2e


def test_a_real_worker_completes_a_ping_sent_through_the_broker(broker_settings, engine, tmp_path):
    ping_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO worker_pings (id, queue) VALUES (:id, 'maintenance')"), {"id": ping_id}
        )
    try:
        with running(worker_command("maintenance"), settings_env(broker_settings), tmp_path / "worker.log"):
            taskqueue.send(taskqueue.make_client(broker_settings), taskqueue.PING, str(ping_id))

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


def test_worker_settings_hand_back_work_of_a_dying_worker(broker_settings):
    conf = taskqueue.configure(Celery("probe", set_as_current=False), broker_settings).conf

    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json" and conf.task_ignore_result
    if taskqueue.uses_amqp(broker_settings.broker_url):
        # RabbitMQ requeues what a closed connection left unacknowledged; nothing waits for a timeout.
        assert "visibility_timeout" not in conf.broker_transport_options
        assert conf.broker_transport_options["confirm_publish"] is True
        assert {queue.name: (queue.durable, queue.queue_arguments) for queue in conf.task_queues} == (
            dict.fromkeys(taskqueue.QUEUES, (True, {"x-queue-type": "quorum"}))
        )
    else:
        assert conf.broker_transport_options["visibility_timeout"] > taskqueue.LONGEST_TASK_SECONDS


def test_on_rabbitmq_a_sender_alone_declares_durable_quorum_queues_and_its_delayed_task_arrives(
    rabbitmq_settings, rabbitmq_vhosts
):
    sender = taskqueue.make_client(rabbitmq_settings)
    marker = str(uuid.uuid4())

    # Before any worker ran on this broker the delay exchanges may not exist: the sender makes them.
    taskqueue.send(sender, taskqueue.MAKE_VIDEO_RENDITIONS, marker, countdown=1)
    queues = rabbitmq_vhosts.queues(rabbitmq_settings.celery_broker_url.rsplit("/", 1)[1])
    with taskqueue.broker_connection(sender) as connection:
        arrived = wait_until(lambda: _take(connection, "videos", marker), timeout=30)

    assert arrived
    assert {name: queues[name] for name in taskqueue.QUEUES} == dict.fromkeys(
        taskqueue.QUEUES, ("quorum", True)
    )


def test_a_delayed_send_to_a_rabbitmq_that_is_down_raises_the_error_the_api_absorbs(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = settings.model_copy(update={"celery_broker_url": f"amqp://guest:guest@127.0.0.1:{closed}//"})

    # web.enqueue logs and absorbs OperationalError: the row is committed and maintenance re-queues it.
    with pytest.raises(OperationalError):
        taskqueue.send(taskqueue.make_client(down), taskqueue.RENDER_PROJECT_THUMBNAIL, "x", countdown=5)


def _take(connection, queue: str, marker: str) -> bool:
    """Whether a message for `marker` sat in `queue`; takes it (and acknowledges what it read)."""
    channel = connection.default_channel
    while (message := channel.basic_get(queue)) is not None:
        channel.basic_ack(message.delivery_tag)
        if json.loads(message.body)[0] == [marker]:
            return True
    return False


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


# What a worker holds before its first task (bench/memory.py --worker measures it): 101 MiB in a fresh
# interpreter with the dev extra installed. Pillow's HEIF plugin, boto3 with local storage and the imports'
# HTTP client are loaded only by the tasks that use them.
IMPORTS_CEILING_MIB = 120


def test_the_worker_app_and_its_tasks_load_within_a_memory_ceiling_and_leave_optional_libraries_alone(
    settings,
):
    assert settings.storage_backend == "local"
    resident_kib, loaded = worker_app_facts(
        settings,
        "[int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]),"
        " [m for m in ('pillow_heif', 'boto3', 'botocore', 'requests') if m in __import__('sys').modules]]",
    )

    assert resident_kib < IMPORTS_CEILING_MIB * 1024
    assert loaded == []
