"""Asset rows of a given status and age, for the lifecycle and maintenance tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.storage.keys import original_key
from models.tables import Asset
from models.users import ensure_user


def aged_asset(
    session: Session, user_id: str, *, status: str, age: timedelta, attempts: int = 0, **columns
) -> Asset:
    """A committed-in-session asset row last updated `age` ago."""
    ensure_user(session, user_id)
    asset_id = uuid.uuid4()
    asset = Asset(
        id=asset_id,
        user_id=user_id,
        type=columns.pop("type", "image"),
        storage_key=columns.pop("storage_key", original_key(user_id, asset_id, "png")),
        mime_type="image/png",
        size_bytes=10,
        status=status,
        attempts=attempts,
        **columns,
    )
    session.add(asset)
    session.flush()
    session.execute(update(Asset).where(Asset.id == asset_id).values(updated_at=datetime.now(UTC) - age))
    return asset


def status_of(session: Session, asset: Asset) -> tuple[str, str | None]:
    row = session.execute(select(Asset.status, Asset.error).where(Asset.id == asset.id)).one()
    return row.status, row.error
