"""Celery configuration shared by both edges, and the one way to send a task by its stable name.

The API builds a client-only Celery app from this module, so it never imports task modules or runs
ffmpeg (it uses only the cheap sniffing parts of workers.media); a task's name and JSON arguments are the
contract between the two edges.
"""

from __future__ import annotations

import weakref
from typing import Any

from celery import Celery
from kombu import Connection, Exchange, Queue
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from core.settings import Settings

QUEUES = ("images", "videos", "renders", "maintenance")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
QUORUM = {"x-queue-type": "quorum"}

# Stable task names (the contract); workers register functions under exactly these.
MAKE_IMAGE_RENDITIONS = "images.make_renditions"
MAKE_VIDEO_RENDITIONS = "videos.make_renditions"
IMPORT_REMOTE_ASSET = "images.import_remote"
RENDER_PROJECT_THUMBNAIL = "renders.project_thumbnail"
# The render's name while it shared the images queue: messages sent under it before an upgrade are
# forwarded to the renders queue by the images workers, never rendered there.
LEGACY_RENDER_PROJECT_THUMBNAIL = "images.render_project_thumbnail"
PING = "maintenance.ping"
PURGE_DELETED_OBJECTS = "maintenance.purge_deleted_objects"
SWEEP_ABANDONED_UPLOADS = "maintenance.sweep_abandoned_uploads"
ABORT_STALE_MULTIPART_UPLOADS = "maintenance.abort_stale_multipart_uploads"
REQUEUE_STUCK_ASSETS = "maintenance.requeue_stuck_assets"
RECONCILE_STORAGE = "maintenance.reconcile_storage"
RESET_GENERATION_CYCLES = "maintenance.reset_generation_cycles"

# The longest hard time limit of any task; the broker must not redeliver a task still running.
LONGEST_TASK_SECONDS = 300
# Workers hold a delayed message unacknowledged until it is due: longer than the visibility timeout
# (below) and the Redis transport would hand it out a second time while it still waits.
MAX_COUNTDOWN_SECONDS = LONGEST_TASK_SECONDS * 2


def queue_for(task_name: str) -> str:
    """The queue a task name belongs to: its prefix before the dot."""
    queue = task_name.split(".", 1)[0]
    if queue not in QUEUES:
        raise ValueError(f"task {task_name!r} names no known queue")
    return queue


def uses_amqp(broker_url: str) -> bool:
    """Whether the broker URL names RabbitMQ (AMQP) rather than Redis."""
    return broker_url.split("://", 1)[0] in AMQP_SCHEMES


def task_queues(broker_url: str) -> list[Queue]:
    """The service's queues as this broker should declare them."""
    if uses_amqp(broker_url):
        return _quorum_queues()
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]


def _quorum_queues() -> list[Queue]:
    # Quorum queues are durable and replicated, and survive a broker node's restart. Their exchanges are
    # topic exchanges because Celery delays countdown tasks through RabbitMQ's native delayed delivery,
    # which binds only topic exchanges; with a direct one a worker would hold every countdown task until
    # it is due, in its only prefetch slot.
    return [
        Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments=QUORUM) for name in QUEUES
    ]


def _transport_options(settings: Settings) -> dict[str, Any]:
    if uses_amqp(settings.broker_url):
        # A send returns once RabbitMQ has the message (on a quorum queue: on a majority of its nodes),
        # so a committed row's task is not lost in the broker's buffers.
        return {"confirm_publish": True}
    options: dict[str, Any] = {
        # Redis has no acknowledgements: a taken message comes back only after this long unacknowledged.
        "visibility_timeout": LONGEST_TASK_SECONDS * 4,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }
    if settings.redis_key_prefix:
        options["global_keyprefix"] = settings.redis_key_prefix
    return options


def configure(app: Celery, settings: Settings) -> Celery:
    """Apply the service's Celery settings to a worker or client app."""
    amqp = uses_amqp(settings.broker_url)
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_queues=task_queues(settings.broker_url),
        task_default_queue="maintenance",
        task_default_queue_type="quorum" if amqp else "classic",
        # Quorum queues refuse a channel-wide prefetch limit: Celery then sets it per consumer.
        worker_detect_quorum_queues=True,
        task_routes={f"{queue}.*": {"queue": queue} for queue in QUEUES},
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # Acknowledged after the task ends and handed back when its process dies: the message is the
        # only record of work a worker had taken, and tasks are idempotent.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_send_sent_event=True,
        worker_send_task_events=True,
        worker_hijack_root_logger=False,
        enable_utc=True,
        timezone="UTC",
    )
    return app


def make_client(settings: Settings) -> Celery:
    """A Celery app that only sends tasks (the API's and the CLI's)."""
    return configure(Celery("iskra-client", set_as_current=False), settings)


def declare_topology(connection: Connection) -> None:
    """Declare the queues on RabbitMQ, and the delay exchanges Celery routes countdown tasks through.

    Workers declare these when they start; a sender that delays a task before any worker ever ran would
    otherwise publish to an exchange that does not exist yet (and lose the channel).
    """
    for queue in _quorum_queues():
        queue(connection.default_channel).declare()
    declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
    for queue in _quorum_queues():
        bind_queue_to_native_delayed_delivery_exchange(connection, queue)


# Clients that have declared the delay exchanges once (they are durable: once per process is enough).
_delays_declared: weakref.WeakSet[Celery] = weakref.WeakSet()


# Publishing to a broker that is down is tried three times, briefly: the caller has committed its row,
# and maintenance re-queues work whose message never left, so a request must not hang on it.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}


def send(
    client: Celery,
    task_name: str,
    *args: Any,
    headers: dict[str, Any] | None = None,
    countdown: float | None = None,
    expires: float | None = None,
) -> None:
    """Send a task by its stable name to its queue. Call only after the creating transaction commits."""
    if countdown and client not in _delays_declared and uses_amqp(client.conf.broker_url):
        # Unretried, as a probe: a broker that is down fails this send at once (OperationalError).
        with broker_connection(client) as connection:
            declare_topology(connection)
        _delays_declared.add(client)
    client.send_task(
        task_name,
        args=list(args),
        queue=queue_for(task_name),
        headers=headers or {},
        countdown=countdown,
        expires=expires,
        retry_policy=SEND_RETRY_POLICY,
    )


# Kombu's Redis transport keeps one list per priority step; priority 0 is the bare queue name.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_depths(broker: Any, key_prefix: str = "") -> dict[str, int]:
    """Messages waiting (not yet taken by a worker) in each Celery queue on a Redis broker.

    With `global_keyprefix` the transport stores a queue's list at `<prefix><queue>`.
    """
    with broker.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(f"{key_prefix}{queue}{suffix}")
        lengths = pipe.execute()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(lengths[i * step : (i + 1) * step]) for i, queue in enumerate(QUEUES)}


def broker_connection(client: Celery, timeout: int = 2) -> Connection:
    """A fresh connection to the broker `client` publishes to, opened now; raises when it does not answer."""
    connection = client.connection_for_write(connect_timeout=timeout)
    try:
        # No retries: a probe reports what it finds; callers that publish retry on their own.
        connection.ensure_connection(max_retries=0, timeout=timeout)
    except BaseException:
        connection.release()
        raise
    return connection


def describe_broker(connection: Connection) -> str:
    """What answered on an open broker connection: product and version, and where (no password)."""
    if connection.transport.driver_type == "redis":
        redis_channel: Any = connection.default_channel
        name = f"Redis {redis_channel.client.info('server')['redis_version']}"
    else:
        properties = connection.connection.server_properties
        name = f"{_text(properties.get('product', 'AMQP'))} {_text(properties.get('version', ''))}".strip()
    return f"{name} at {connection.as_uri()}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def amqp_queue_depths(connection: Connection) -> dict[str, int]:
    """Messages ready (not yet taken by a worker) in each queue on a RabbitMQ broker."""
    depths = {}
    for queue in QUEUES:
        channel: Any = connection.channel()
        try:
            depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
        except connection.channel_errors:
            depths[queue] = 0  # not declared yet: no worker or sender has used it
        finally:
            if channel.is_open:
                channel.close()
    return depths
