"""The Celery entry point (`celery -A workers.app worker`); nothing imports this module."""

from __future__ import annotations

import structlog
from celery import Celery
from celery.signals import worker_init, worker_process_init

from core import taskqueue
from core.logs import configure_logging
from core.settings import Settings
from workers import context
from workers.media.codecs import image_codec_support
from workers.memory import apply_memory_ceiling
from workers.metrics import connect_task_metrics
from workers.prefork import connect_prefork_memory
from workers.schedule import beat_schedule
from workers.task_logging import connect_task_logging

settings = Settings()
configure_logging(settings)
app = taskqueue.configure(Celery("iskra"), settings)
app.conf.update(
    include=[
        "workers.maintenance",
        "workers.images",
        "workers.videos",
        "workers.generation_tasks",
        "workers.projects",
        "workers.imports",
        "workers.storage_tasks",
    ],
    # Hand back a task whose worker process dies mid-run; recycle children that grow too big (KiB).
    worker_max_memory_per_child=settings.worker_memory_limit_mb * 1024,
    worker_max_tasks_per_child=500,
)
app.conf.beat_schedule = beat_schedule()
context.install(context.build(settings))
connect_task_logging(settings)
connect_task_metrics(settings)
connect_prefork_memory()


@worker_process_init.connect
def _fresh_connections_after_fork(**_: object) -> None:
    # A forked child must not share the parent's pooled connections.
    context.current().engine.dispose(close=False)
    apply_memory_ceiling(settings.worker_memory_limit_mb)


@worker_init.connect
def _report_missing_image_codecs(**_: object) -> None:
    # Uploads of these types are accepted by the API; without the codec their assets would all fail.
    for codec, available in image_codec_support().items():
        if not available:
            structlog.get_logger(__name__).error("image codec unavailable", codec=codec)
