"""Assets as users see them: load-or-404, list by cursor, delete; and storage bookkeeping (reconcile, purge).

Their lifecycle (creation, rendering, imports) is models.asset_lifecycle."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from models import events
from models.errors import BadRequest, NotFound, StorageError
from models.quota import release_storage
from models.renditions import object_keys
from models.storage.base import Storage
from models.tables import Asset, PendingDeletion, User

log = structlog.get_logger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def get_owned_asset(session: Session, user_id: str, asset_id: str, *, for_update: bool = False) -> Asset:
    """The user's asset; someone else's, a missing one and a malformed id are the same NotFound."""
    try:
        key = uuid.UUID(asset_id)
    except ValueError:
        raise NotFound("Asset not found.") from None
    query = select(Asset).where(Asset.id == key, Asset.user_id == user_id)
    asset = session.execute(query.with_for_update() if for_update else query).scalar_one_or_none()
    if asset is None:
        raise NotFound("Asset not found.")
    return asset


def get_owned_assets(
    session: Session, user_id: str, asset_ids: list[uuid.UUID], *, asset_type: str | None = None
) -> list[Asset]:
    """The user's assets among `asset_ids`, in that order; anyone else's and missing ones are left out."""
    query = select(Asset).where(Asset.user_id == user_id, Asset.id.in_(asset_ids))
    if asset_type:
        query = query.where(Asset.type == asset_type)
    found = {asset.id: asset for asset in session.scalars(query)}
    return [found[asset_id] for asset_id in asset_ids if asset_id in found]


def delete_asset(session: Session, user_id: str, asset_id: str) -> None:
    """Delete the row, give its bytes back and outbox its objects, all in the caller's transaction."""
    asset = get_owned_asset(session, user_id, asset_id, for_update=True)
    deleted_id = asset.id
    if asset.size_bytes:
        release_storage(session, user_id, asset.size_bytes)
    session.add_all(PendingDeletion(storage_key=key) for key in object_keys(asset))
    session.delete(asset)
    session.flush()
    events.asset_deleted(session, user_id, deleted_id)


# -- listing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    items: list[Asset]
    next_cursor: str | None


def encode_cursor(asset: Asset) -> str:
    """An opaque position after `asset` in newest-first order: (created_at in µs, id)."""
    micros = (asset.created_at - _EPOCH) // timedelta(microseconds=1)
    raw = f"{micros}:{asset.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, _, asset_id = raw.partition(":")
        return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(asset_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise BadRequest("The cursor is not one this API handed out.") from None


def list_assets(
    session: Session, user_id: str, *, limit: int, cursor: str | None = None, asset_type: str | None = None
) -> Page:
    """One page of the user's assets, newest first, with the cursor of the next page if there is one."""
    query = select(Asset).where(Asset.user_id == user_id)
    if asset_type:
        query = query.where(Asset.type == asset_type)
    if cursor:
        created_at, asset_id = decode_cursor(cursor)
        query = query.where(tuple_(Asset.created_at, Asset.id) < tuple_(created_at, asset_id))
    rows = session.scalars(query.order_by(Asset.created_at.desc(), Asset.id.desc()).limit(limit + 1)).all()
    items = list(rows[:limit])
    return Page(items=items, next_cursor=encode_cursor(items[-1]) if len(rows) > limit else None)


# -- maintenance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    user_id: str
    recorded_bytes: int
    actual_bytes: int


def _sum_of_sizes(user_id: str) -> Any:
    return select(func.coalesce(func.sum(Asset.size_bytes), 0)).where(Asset.user_id == user_id)


def reconcile_storage_usage(session: Session) -> list[Drift]:
    """Set every user's storage_used_bytes to the sum of their assets' sizes; what was fixed."""
    totals = (
        select(Asset.user_id, func.sum(Asset.size_bytes).label("total")).group_by(Asset.user_id).subquery()
    )
    suspects = session.scalars(
        select(User.user_id)
        .outerjoin(totals, totals.c.user_id == User.user_id)
        .where(User.storage_used_bytes != func.coalesce(totals.c.total, 0))
    ).all()
    fixed = []
    for user_id in suspects:
        # Lock first, then sum: uploads and deletes change usage and rows in one transaction under
        # this same row lock, so the sum read after the lock is the truth, not a racing snapshot.
        user = session.execute(select(User).where(User.user_id == user_id).with_for_update()).scalar_one()
        actual = session.execute(_sum_of_sizes(user_id)).scalar_one()
        if user.storage_used_bytes != actual:
            fixed.append(Drift(user_id, user.storage_used_bytes, actual))
            user.storage_used_bytes = actual
    session.flush()
    events.usage_changed(session, *(drift.user_id for drift in fixed))
    for drift in fixed:
        log.warning("storage_usage_drift_fixed", **drift.__dict__)
    return fixed


def purge_pending_deletions(session: Session, storage: Storage, limit: int = 500) -> int:
    """Delete outboxed objects from storage, then their outbox rows; how many were purged."""
    rows = session.scalars(
        select(PendingDeletion).order_by(PendingDeletion.id).limit(limit).with_for_update(skip_locked=True)
    ).all()
    done = []
    for row in rows:
        try:
            storage.delete(row.storage_key)
        except StorageError:
            # Keep this row and the rest for the next run; storage deletes are idempotent.
            log.warning("purge_storage_unavailable", storage_key=row.storage_key, exc_info=True)
            break
        done.append(row.id)
    if done:
        session.execute(delete(PendingDeletion).where(PendingDeletion.id.in_(done)))
    return len(done)
