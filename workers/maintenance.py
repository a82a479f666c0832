"""Maintenance tasks on the `maintenance` queue: ping, re-queue stalled assets, sweep abandoned objects and
abort abandoned direct uploads."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import update

from core import taskqueue
from models.asset_lifecycle import requeue_stuck
from models.maintenance import delete_abandoned_objects, try_sweep_lock
from models.storage.multipart import abort_incomplete_uploads
from models.tables import WorkerPing
from workers.context import current
from workers.metrics import MULTIPART_ABORTED
from workers.policy import task
from workers.task_logging import follow_up_headers

log = structlog.get_logger(__name__)


@task(taskqueue.PING, soft_time_limit=10, time_limit=20)
def ping(ping_id: str) -> None:
    """Stamp a ping row done: proves broker, worker and database are wired together."""
    with current().sessions.begin() as session:
        session.execute(
            update(WorkerPing)
            .where(WorkerPing.id == uuid.UUID(ping_id), WorkerPing.completed_at.is_(None))
            .values(completed_at=datetime.now(UTC), worker=socket.gethostname())
        )


@task(taskqueue.REQUEUE_STUCK_ASSETS, soft_time_limit=60, time_limit=90)
def requeue_stuck_assets(limit: int = 500) -> dict[str, int]:
    """Send stalled assets back to their rendition queue; fail those that used up their attempts."""
    context = current()
    settings = context.settings
    stuck_for = timedelta(minutes=settings.stuck_asset_minutes)
    with context.sessions.begin() as session:
        outcome = requeue_stuck(session, stuck_for, settings.max_processing_attempts, limit)
    for asset_id, task_name in outcome.requeued:
        # Expiring at the next stall deadline: a queue nobody consumes does not pile up copies.
        taskqueue.send(
            context.celery,
            task_name,
            asset_id,
            headers=follow_up_headers(),
            expires=stuck_for.total_seconds(),
        )
    if outcome.requeued or outcome.failed:
        log.warning("stuck_assets", requeued=[i for i, _ in outcome.requeued], failed=outcome.failed)
    return {"requeued": len(outcome.requeued), "failed": len(outcome.failed)}


@task(taskqueue.SWEEP_ABANDONED_UPLOADS, soft_time_limit=240, time_limit=270)
def sweep_abandoned_uploads() -> int:
    """Delete stored objects that no row owns once they are older than the grace period."""
    context = current()
    grace = timedelta(minutes=context.settings.abandoned_upload_grace_minutes)
    with context.sessions.begin() as session:
        if not try_sweep_lock(session):
            log.info("sweep_skipped", reason="another sweep holds the lock")
            return 0
        deleted = delete_abandoned_objects(session, context.storage, grace)
    if deleted:
        log.warning("abandoned_objects_deleted", count=len(deleted), keys=deleted[:20])
    return len(deleted)


@task(taskqueue.ABORT_STALE_MULTIPART_UPLOADS, soft_time_limit=240, time_limit=270)
def abort_stale_multipart_uploads(max_age_seconds: float | None = None) -> int:
    """Abort direct uploads left incomplete past MULTIPART_UPLOAD_MAX_AGE_HOURS (or `max_age_seconds`)."""
    context = current()
    if max_age_seconds is None:
        max_age_seconds = context.settings.multipart_upload_max_age_hours * 3600
    started_before = datetime.now(UTC) - timedelta(seconds=max_age_seconds)
    aborted = abort_incomplete_uploads(context.storage, started_before)
    MULTIPART_ABORTED.labels(context.settings.storage_backend).inc(len(aborted))
    if aborted:
        log.warning("stale_multipart_uploads_aborted", count=len(aborted), keys=[u.key for u in aborted[:20]])
    return len(aborted)
