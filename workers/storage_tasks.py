"""Storage bookkeeping on the `maintenance` queue: reconcile usage with asset sizes, purge deleted objects."""

from __future__ import annotations

import structlog

from core import taskqueue
from models.assets import purge_pending_deletions, reconcile_storage_usage
from models.maintenance import try_reconcile_lock
from workers.context import current
from workers.policy import task

log = structlog.get_logger(__name__)
PURGE_BATCH = 500


@task(taskqueue.RECONCILE_STORAGE, soft_time_limit=240, time_limit=270)
def reconcile_storage() -> list[dict]:
    """Set each user's storage_used_bytes to the sum of their assets; report the drift fixed."""
    with current().sessions.begin() as session:
        # Two runs at once could lock the same users in different orders and deadlock; one does it all.
        if not try_reconcile_lock(session):
            log.info("reconcile_skipped", reason="another reconciliation holds the lock")
            return []
        fixed = reconcile_storage_usage(session)
    log.info("storage_usage_reconciled", drifted_users=len(fixed))
    return [drift.__dict__ for drift in fixed]


@task(taskqueue.PURGE_DELETED_OBJECTS, soft_time_limit=240, time_limit=270)
def purge_deleted_objects(limit: int = PURGE_BATCH) -> int:
    """Remove the objects of deleted assets from storage, one outboxed batch at a time."""
    context = current()
    with context.sessions.begin() as session:
        return purge_pending_deletions(session, context.storage, limit)
