"""What Celery beat sends, and how often; every task it names is idempotent and safe to overlap."""

from __future__ import annotations

from typing import Any

from core import taskqueue

MINUTE = 60.0


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The beat schedule; each message expires before its next one is due, so a backlog never piles up."""
    every = {
        taskqueue.PURGE_DELETED_OBJECTS: 1 * MINUTE,
        taskqueue.REQUEUE_STUCK_ASSETS: 2 * MINUTE,
        taskqueue.RECONCILE_STORAGE: 15 * MINUTE,
        taskqueue.SWEEP_ABANDONED_UPLOADS: 60 * MINUTE,
        taskqueue.ABORT_STALE_MULTIPART_UPLOADS: 60 * MINUTE,
        taskqueue.RESET_GENERATION_CYCLES: 60 * MINUTE,
    }
    return {
        name: {
            "task": name,
            "schedule": seconds,
            "options": {"queue": taskqueue.queue_for(name), "expires": seconds * 0.9},
        }
        for name, seconds in every.items()
    }
