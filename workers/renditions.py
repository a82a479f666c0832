"""The lifecycle every media task shares: claim the row, work outside a transaction, record the outcome.

pending → processing → ready | failed. The claim and the outcome are two short transactions; the media
work between them holds no connection. Renditions are stored under fresh keys before the row points at
them, and only the attempt whose final UPDATE still finds the row `processing` wins: a losing or crashed
attempt's objects are never referenced and are deleted. A failed asset keeps its row and its original (so
the user sees why) and stays charged against the quota, because its bytes are still stored; deleting the
asset gives them back.
"""

from __future__ import annotations

import io
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import func, update
from sqlalchemy.orm import Session

from models.errors import ObjectMissing, StorageError
from models.storage.keys import RENDITIONS_PREFIX, rendition_key
from models.tables import Asset
from workers.context import WorkerContext, current
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits, media_limits
from workers.media.sniff import SniffedType, sniff

log = structlog.get_logger(__name__)

# Transient storage errors are retried this many times (with exponential backoff) by the task.
TRANSIENT_RETRIES = 5


class RenditionTask(Task):
    """A rendition task whose hard time limit fails its asset as `timeout` instead of leaving it stuck."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # The hard limit kills the pool process mid-work; the worker's main process reports it here, and
        # the message is acknowledged, so nothing else would move the row on from `processing`.
        if not (isinstance(exc, TimeLimitExceeded) and args):
            return
        try:
            fail_timed_out(str(args[0]))
        except Exception:  # the database is down too: the stuck-asset job moves the row on later
            log.exception("timed out asset not marked failed", asset_id=str(args[0]))


def fail_timed_out(asset_id: str) -> str | None:
    """Fail an asset whose attempt was killed at its hard time limit; its stored renditions are dropped."""
    try:
        claim_id = uuid.UUID(asset_id)
    except ValueError:
        return None
    log.warning("media timed out", asset_id=asset_id, code="timeout")
    return _fail_asset(current(), claim_id, "timeout")


def rendition_task(name: str, *, soft_time_limit: int, time_limit: int) -> Callable:
    """A bound rendition task that retries transient storage errors with backoff, nothing else."""
    return shared_task(
        name=name,
        base=RenditionTask,
        bind=True,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        autoretry_for=(StorageError,),
        retry_backoff=True,
        max_retries=TRANSIENT_RETRIES,
    )


WEBP = "image/webp"
# The key columns each rendition fills. A video's poster is its thumbnail too, so every ready asset has
# one and listings or canvas thumbnails read a single column.
RENDITION_COLUMNS = {
    "thumbnail": ("thumbnail_key",),
    "preview": ("preview_key",),
    "poster": ("poster_key", "thumbnail_key"),
}


@dataclass(frozen=True)
class Claim:
    """The row as this attempt claimed it."""

    asset_id: uuid.UUID
    type: str
    storage_key: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """What a successful attempt produced: WebP bytes by rendition name, and the columns it measured."""

    renditions: dict[str, bytes]
    columns: dict[str, Any] = field(default_factory=dict)


Make = Callable[[WorkerContext, Claim, MediaLimits], Outcome]


def sniffed_as(head: bytes, kind: str) -> SniffedType:
    """The original's type from its own magic bytes (the row's mime type is not trusted), if a `kind`."""
    if not head:
        raise MediaRejected("empty")
    sniffed = sniff(head)
    if sniffed is None or sniffed.kind != kind:
        raise MediaRejected("unsupported-format", f"not an accepted {kind} type")
    return sniffed


def process(asset_id: str, make: Make, *, retries: int = 0) -> str | None:
    """Run one attempt on the asset; the row's final status, or None when there was nothing to do.

    Transient storage errors propagate so the task retries them; after the last retry the asset fails
    with `storage-unavailable` (the error still propagates, so the task shows as failed in Flower).
    """
    context = current()
    claim = claim_asset(context, asset_id)
    if claim is None:
        return None
    try:
        return finish(context, claim, make(context, claim, media_limits(context.settings)))
    except MediaRejected as rejected:
        log.info("media rejected", asset_id=asset_id, code=rejected.code, detail=rejected.detail)
        return fail(context, claim, rejected.code)
    except SoftTimeLimitExceeded:
        return fail(context, claim, "timeout")
    except ObjectMissing:
        return fail(context, claim, "original-missing")
    except MemoryError:
        # The process's memory ceiling (workers.memory) stopped the work; what it held is freed by now.
        log.warning("media over the memory ceiling", asset_id=asset_id, code="too-large")
        return fail(context, claim, "too-large")
    except StorageError:
        if retries >= TRANSIENT_RETRIES:
            fail(context, claim, "storage-unavailable")
        raise
    except Exception:
        # A bug, not the file's fault: say so on the row rather than leave it `processing`, and re-raise.
        fail(context, claim, "internal-error")
        raise


def claim_asset(context: WorkerContext, asset_id: str) -> Claim | None:
    """Mark the row `processing` and count the attempt; None when it is gone, finished or out of attempts.

    `processing` is claimable too: that is a run after a crash (or a retry). Crashes and retries share
    one budget, so a file that kills its worker every time ends `failed` instead of looping forever.
    """
    budget = context.settings.max_processing_attempts + TRANSIENT_RETRIES
    with context.sessions.begin() as session:
        row = session.execute(
            update(Asset)
            .where(Asset.id == uuid.UUID(asset_id), Asset.status.in_(("pending", "processing")))
            .values(status="processing", attempts=Asset.attempts + 1, updated_at=func.now())
            .returning(Asset.id, Asset.type, Asset.storage_key, Asset.attempts)
        ).one_or_none()
        if row is None:
            return None
        if row.attempts > budget:
            _set_failed(session, row.id, "too-many-attempts")
            log.warning("asset out of attempts", asset_id=asset_id, attempts=row.attempts)
            return None
    return Claim(asset_id=row.id, type=row.type, storage_key=row.storage_key, attempt=row.attempts)


def finish(context: WorkerContext, claim: Claim, outcome: Outcome) -> str | None:
    """Store the renditions, then point the row at them if this attempt still owns it."""
    stored: list[str] = []
    won = False
    try:
        keys = {}
        for name, data in outcome.renditions.items():
            key = fresh_key(claim, name)
            context.storage.put(key, io.BytesIO(data), content_type=WEBP)
            stored.append(key)
            keys.update(dict.fromkeys(RENDITION_COLUMNS[name], key))
        with context.sessions.begin() as session:
            updated = _update_processing(
                session, claim.asset_id, status="ready", error=None, **keys, **outcome.columns
            )
        won = updated  # only once committed: a failed commit must still delete what it stored
    finally:
        if not won:
            _delete_quietly(context, stored)
    if not won:
        return None
    sweep_orphans(context, claim.asset_id, keep=set(stored))
    return "ready"


def fail(context: WorkerContext, claim: Claim, code: str) -> str | None:
    """Record `code` on the row if this attempt still owns it; drop renditions of earlier dead attempts."""
    return _fail_asset(context, claim.asset_id, code)


def _fail_asset(context: WorkerContext, asset_id: uuid.UUID, code: str) -> str | None:
    with context.sessions.begin() as session:
        recorded = _set_failed(session, asset_id, code)
    if recorded:
        sweep_orphans(context, asset_id, keep=set())
    return "failed" if recorded else None


def _set_failed(session: Session, asset_id: uuid.UUID, code: str) -> bool:
    return _update_processing(session, asset_id, status="failed", error=code)


def _update_processing(session: Session, asset_id: uuid.UUID, **values: Any) -> bool:
    """Apply `values` only if the row is still `processing`; whether it was."""
    updated = session.execute(
        update(Asset)
        .where(Asset.id == asset_id, Asset.status == "processing")
        .values(updated_at=func.now(), **values)
        .returning(Asset.id)
    ).one_or_none()
    return updated is not None


def fresh_key(claim: Claim, name: str) -> str:
    """A key no earlier attempt used, so a re-run never overwrites an object a row references."""
    return rendition_key(claim.asset_id, f"{name}-{claim.attempt}-{secrets.token_hex(4)}")


def sweep_orphans(context: WorkerContext, asset_id: uuid.UUID, keep: set[str]) -> None:
    """Delete this asset's renditions that the finished row does not reference (left by dead attempts).

    An attempt still running elsewhere cannot lose anything it needs: it can no longer win the row.
    """
    try:
        orphans = [
            info.key
            for info in context.storage.iter_objects(f"{RENDITIONS_PREFIX}{asset_id}/")
            if info.key not in keep
        ]
    except StorageError as error:
        # Garbage, not state: the row is already final, so a retry could not redo this sweep.
        log.warning("rendition sweep failed", asset_id=str(asset_id), error=str(error))
        return
    _delete_quietly(context, orphans)


def _delete_quietly(context: WorkerContext, keys: list[str]) -> None:
    for key in keys:
        try:
            context.storage.delete(key)
        except StorageError as error:
            log.warning("rendition delete failed", key=key, error=str(error))
