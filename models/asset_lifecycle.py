"""An asset's lifecycle, every transition in one place: pending → processing → ready | failed.

An upload is created `pending` with its original stored and charged. An import is created `pending` with
no bytes; `claim_import` and `record_import` give it its original (charging it then), and it continues as
an upload does. `claim_for_rendering` moves it to `processing` and counts the attempt; `record_renditions`
or `record_failure` end it, but only while it is still `processing`, so of two attempts at once (a
redelivery beside a slow first run) exactly one wins. Maintenance hands stalled assets back
(`requeue_stuck`) and operators hand failed ones back (`reset_failed`).

One attempt budget (`max_attempts`, MAX_PROCESSING_ATTEMPTS) bounds every path: each claim of a rendition
or an import — a first run, a retry after a transient error, a redelivery after a worker died — is one
attempt, and a claim past the budget fails the asset `too-many-attempts`, so an input that kills its
worker every time ends failed instead of looping. Functions take a Session and never commit; the caller
commits, then sends `next_task` for what it returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import ColumnElement, Update, func, insert, select, update
from sqlalchemy.orm import Session

from core import taskqueue
from models import events
from models.plans import get_plan
from models.quota import reserve_storage
from models.renditions import rendition_columns
from models.storage.keys import original_key
from models.tables import Asset, User

log = structlog.get_logger(__name__)


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


UNFINISHED = (Status.PENDING, Status.PROCESSING)
OUT_OF_ATTEMPTS = "too-many-attempts"
ABANDONED = "processing-abandoned"
RENDITION_TASKS = {"image": taskqueue.MAKE_IMAGE_RENDITIONS, "video": taskqueue.MAKE_VIDEO_RENDITIONS}
IMPORT_PLACEHOLDER_MIME = "application/octet-stream"


def next_task(asset_type: str, size_bytes: int, original_url: str | None) -> str:
    """The task that moves an unfinished asset on: a bytes-less import's download, else its renditions."""
    if original_url and not size_bytes:
        return taskqueue.IMPORT_REMOTE_ASSET
    return RENDITION_TASKS[asset_type]


# -- creation -----------------------------------------------------------------------------------


def create_upload(
    session: Session,
    *,
    asset_id: uuid.UUID,
    user_id: str,
    asset_type: str,
    storage_key: str,
    mime_type: str,
    size_bytes: int,
    generation: dict[str, Any],
) -> Asset:
    """Charge `size_bytes` to the user's quota (QuotaExceeded otherwise) and insert the pending asset."""
    reserve_storage(session, user_id, size_bytes)
    return _insert(
        session, id=asset_id, user_id=user_id, type=asset_type, storage_key=storage_key,
        mime_type=mime_type, size_bytes=size_bytes, generation=generation,
    )  # fmt: skip


def create_import(
    session: Session, *, user_id: str, asset_type: str, source_url: str, generation: dict[str, Any]
) -> Asset:
    """A pending asset with no bytes yet; its import task downloads, charges and points it at its original."""
    asset_id = uuid.uuid4()
    key = original_key(user_id, asset_id, "bin")
    return _insert(
        session, id=asset_id, user_id=user_id, type=asset_type, storage_key=key,
        mime_type=IMPORT_PLACEHOLDER_MIME, size_bytes=0, generation=generation, original_url=source_url,
    )  # fmt: skip


# The row as inserted, server defaults and all, is what its event shows: no second read. Built once.
_INSERT = insert(Asset).returning(Asset)


def _insert(session: Session, **columns: Any) -> Asset:
    asset = session.execute(_INSERT, {"status": Status.PENDING, **columns}).scalar_one()
    events.asset_now(session, asset)
    return asset


# -- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """The row as one rendering attempt claimed it."""

    asset_id: uuid.UUID
    type: str
    storage_key: str
    mime_type: str
    size_bytes: int
    attempt: int


def claim_for_rendering(session: Session, asset_id: str, max_attempts: int) -> Claim | None:
    """Mark the asset `processing` and count the attempt; None when it is gone, finished or out of attempts.

    `processing` is claimable too: that is a run after a crash or a retry.
    """
    row = _changed(
        session,
        update(Asset)
        .where(Asset.id == _id(asset_id), Asset.status.in_(UNFINISHED), _has_original())
        .values(status=Status.PROCESSING, attempts=Asset.attempts + 1, updated_at=func.now()),
    )
    if row is None:
        return None
    if row.attempts > max_attempts:
        _out_of_attempts(session, row.id, row.attempts)
        return None
    events.asset_now(session, row)
    return Claim(row.id, row.type, row.storage_key, row.mime_type, row.size_bytes, row.attempts)


def record_renditions(
    session: Session, asset_id: uuid.UUID, keys: dict[str, str], measurements: dict[str, Any]
) -> bool:
    """Mark the asset ready with its renditions (name → key) and measurements, if still `processing`."""
    values = {**rendition_columns(keys), **measurements, "error": None}
    return _finish(session, asset_id, Status.READY, **values)


def record_failure(session: Session, asset_id: uuid.UUID, code: str) -> bool:
    """Mark the asset failed with a machine code, if it is still `processing`; whether it was."""
    return _finish(session, asset_id, Status.FAILED, error=code)


def _finish(session: Session, asset_id: uuid.UUID, status: Status, **values: Any) -> bool:
    finished = _changed(
        session,
        update(Asset)
        .where(Asset.id == asset_id, Asset.status == Status.PROCESSING)
        .values(status=status, updated_at=func.now(), **values),
    )
    if finished is not None:
        events.asset_now(session, finished)
    return finished is not None


def _changed(session: Session, statement: Update) -> Asset | None:
    """The row an UPDATE of one asset changed, as it now is (its event needs no second read), or None."""
    # The returned row refreshes the session's copy; the ORM's own synchronization would only redo that.
    options = {"populate_existing": True, "synchronize_session": False}
    return session.execute(statement.returning(Asset), execution_options=options).scalar_one_or_none()


# -- imports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportClaim:
    """A pending import as one download attempt claimed it."""

    asset_id: uuid.UUID
    user_id: str
    type: str
    source_url: str
    max_bytes: int
    # Storage room the user had when the attempt started: a download never needs to go past it.
    room_bytes: int


def claim_import(session: Session, asset_id: str, max_attempts: int) -> ImportClaim | None:
    """Count a download attempt on a pending import with no bytes yet; None when there is nothing to do."""
    # Touching updated_at restarts the stall clock of maintenance's requeue_stuck.
    row = session.execute(
        update(Asset)
        .where(Asset.id == _id(asset_id), Asset.status == Status.PENDING, _awaiting_download())
        .values(attempts=Asset.attempts + 1, updated_at=func.now())
        .returning(Asset.id, Asset.user_id, Asset.type, Asset.original_url, Asset.attempts)
    ).one_or_none()
    if row is None:
        return None
    if row.attempts > max_attempts:
        session.execute(
            update(Asset)
            .where(Asset.id == row.id)
            .values(status=Status.FAILED, error=OUT_OF_ATTEMPTS, updated_at=func.now())
        )
        events.asset_changed(session, row.id)
        log.warning("import_out_of_attempts", asset_id=asset_id, attempts=row.attempts)
        return None
    user = session.execute(
        select(User.tier, User.storage_used_bytes).where(User.user_id == row.user_id)
    ).one()
    plan = get_plan(session, user.tier)
    room = max(0, plan.storage_quota_bytes - user.storage_used_bytes)
    return ImportClaim(row.id, row.user_id, row.type, row.original_url, plan.max_upload_bytes, room)


def record_import(
    session: Session, asset_id: uuid.UUID, *, storage_key: str, mime_type: str, size: int
) -> bool:
    """Charge the imported original (QuotaExceeded otherwise) and point the row at it; False when moved on."""
    asset = session.get(Asset, asset_id, with_for_update=True)
    if asset is None or asset.status != Status.PENDING or asset.size_bytes:
        return False
    reserve_storage(session, asset.user_id, size)
    asset.storage_key, asset.mime_type, asset.size_bytes = storage_key, mime_type, size
    # Attempts counted downloads so far; rendering the stored original starts with its full budget.
    asset.attempts = 0
    session.flush()
    events.asset_changed(session, asset_id)
    return True


def fail_import(session: Session, asset_id: uuid.UUID, code: str) -> bool:
    """Fail an import that never stored its bytes (nothing was charged, so nothing is given back)."""
    failed = session.execute(
        update(Asset)
        .where(Asset.id == asset_id, Asset.status == Status.PENDING, _awaiting_download())
        .values(status=Status.FAILED, error=code, updated_at=func.now())
        .returning(Asset.id)
    ).one_or_none()
    if failed is not None:
        events.asset_changed(session, asset_id)
    return failed is not None


# -- maintenance and operators ------------------------------------------------------------------


@dataclass(frozen=True)
class Requeued:
    """(asset id, next task) of each asset handed back, and the ids given up on as failed."""

    requeued: list[tuple[str, str]]
    failed: list[str]


def requeue_stuck(session: Session, older_than: timedelta, max_attempts: int, limit: int = 500) -> Requeued:
    """Reset assets unfinished for longer than `older_than` to pending, or fail them past `max_attempts`.

    Rows are claimed FOR UPDATE SKIP LOCKED, so two maintenance runs at once split the work.
    """
    if older_than.total_seconds() <= taskqueue.LONGEST_TASK_SECONDS:
        raise ValueError("older_than must exceed the longest task time limit, or live work is re-queued")
    cutoff = datetime.now(UTC) - older_than
    rows = session.execute(
        select(Asset.id, Asset.type, Asset.attempts, Asset.size_bytes, Asset.original_url)
        .where(Asset.status.in_(UNFINISHED), Asset.updated_at < cutoff)
        .order_by(Asset.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    failed = [row.id for row in rows if row.attempts >= max_attempts]
    retried = [row for row in rows if row.attempts < max_attempts]
    if failed:
        session.execute(
            update(Asset)
            .where(Asset.id.in_(failed))
            .values(status=Status.FAILED, error=ABANDONED, updated_at=func.now())
        )
    if retried:
        # Touching updated_at restarts the clock, so the next run leaves them alone while they wait.
        session.execute(
            update(Asset)
            .where(Asset.id.in_([row.id for row in retried]))
            .values(status=Status.PENDING, updated_at=func.now())
        )
    for asset_id in [*failed, *(row.id for row in retried)]:
        events.asset_changed(session, asset_id)
    requeued = [(str(row.id), next_task(row.type, row.size_bytes, row.original_url)) for row in retried]
    return Requeued(requeued, [str(asset_id) for asset_id in failed])


def reset_failed(session: Session, asset_ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Put failed assets (these ids, or all when None) back to pending with a fresh attempt budget.

    Returns (id, next task) of each reset asset; ids that are not failed are left alone.
    """
    query = select(Asset.id).where(Asset.status == Status.FAILED).with_for_update(skip_locked=True)
    if asset_ids is not None:
        query = query.where(Asset.id.in_([uuid.UUID(asset_id) for asset_id in asset_ids]))
    ids = session.scalars(query).all()
    if not ids:
        return []
    rows = session.execute(
        update(Asset)
        .where(Asset.id.in_(ids))
        .values(status=Status.PENDING, error=None, attempts=0, updated_at=func.now())
        .returning(Asset.id, Asset.type, Asset.size_bytes, Asset.original_url)
    ).all()
    for row in rows:
        events.asset_changed(session, row.id)
    return [(str(row.id), next_task(row.type, row.size_bytes, row.original_url)) for row in rows]


def failed_assets(session: Session, user_id: str | None = None, limit: int = 100) -> Sequence[Asset]:
    """Failed assets, most recently failed first, optionally of one user."""
    query = select(Asset).where(Asset.status == Status.FAILED).order_by(Asset.updated_at.desc()).limit(limit)
    if user_id is not None:
        query = query.where(Asset.user_id == user_id)
    return session.scalars(query).all()


def _out_of_attempts(session: Session, asset_id: uuid.UUID, attempts: int) -> None:
    record_failure(session, asset_id, OUT_OF_ATTEMPTS)
    log.warning("asset_out_of_attempts", asset_id=str(asset_id), attempts=attempts)


def _has_original() -> ColumnElement[bool]:
    return ~_awaiting_download()


def _awaiting_download() -> ColumnElement[bool]:
    return (Asset.size_bytes == 0) & Asset.original_url.is_not(None)


def _id(asset_id: str) -> uuid.UUID:
    return uuid.UUID(asset_id)
