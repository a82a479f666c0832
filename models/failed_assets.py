"""Assets that ended `failed`: list them for operators and hand them back to the workers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import taskqueue
from models.assets import RENDITION_TASKS
from models.tables import Asset


def failed_assets(session: Session, user_id: str | None = None, limit: int = 100) -> Sequence[Asset]:
    """Failed assets, most recently failed first, optionally of one user."""
    query = select(Asset).where(Asset.status == "failed").order_by(Asset.updated_at.desc()).limit(limit)
    if user_id is not None:
        query = query.where(Asset.user_id == user_id)
    return session.scalars(query).all()


def reset_failed_assets(session: Session, asset_ids: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Put failed assets (these ids, or all when None) back to pending with a fresh attempt budget.

    Returns (id, task name) of each reset asset: its rendition task, or the import task for an import
    that never stored its bytes. The caller commits, then sends them. Ids not failed are left alone.
    """
    query = select(Asset.id).where(Asset.status == "failed").with_for_update(skip_locked=True)
    if asset_ids is not None:
        query = query.where(Asset.id.in_([uuid.UUID(asset_id) for asset_id in asset_ids]))
    ids = session.scalars(query).all()
    if not ids:
        return []
    rows = session.execute(
        update(Asset)
        .where(Asset.id.in_(ids))
        .values(status="pending", error=None, attempts=0, updated_at=func.now())
        .returning(Asset.id, Asset.type, Asset.size_bytes, Asset.original_url)
    ).all()
    return [(str(row.id), _task_for(row.type, row.size_bytes, row.original_url)) for row in rows]


def _task_for(asset_type: str, size_bytes: int, original_url: str | None) -> str:
    if original_url and not size_bytes:
        return taskqueue.IMPORT_REMOTE_ASSET
    return RENDITION_TASKS[asset_type]
