"""Celery configuration shared by both edges, and the one way to send a task by its stable name.

The API builds a client-only Celery app from this module, so it never imports task modules or runs
ffmpeg (it uses only the cheap sniffing parts of workers.media); a task's name and JSON arguments are the
contract between the two edges.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.settings import Settings

QUEUES = ("images", "videos", "renders", "maintenance")

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


def configure(app: Celery, settings: Settings) -> Celery:
    """Apply the service's Celery settings to a worker or client app."""
    transport_options: dict[str, Any] = {
        "visibility_timeout": LONGEST_TASK_SECONDS * 4,
        "socket_timeout": 10,
        "socket_connect_timeout": 5,
    }
    if settings.redis_key_prefix:
        transport_options["global_keyprefix"] = settings.redis_key_prefix
    app.conf.update(
        broker_url=settings.broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_queue="maintenance",
        task_routes={f"{queue}.*": {"queue": queue} for queue in QUEUES},
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
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
