"""Numbers operators watch: assets by status and stored bytes by tier."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.asset_lifecycle import Status
from models.tables import Asset, Plan, User


def asset_counts_by_status(session: Session) -> dict[str, int]:
    """How many assets are in each status (every known status present, zero when none)."""
    counts = dict.fromkeys(map(str, Status), 0)
    rows = session.execute(select(Asset.status, func.count()).group_by(Asset.status))
    counts.update({status: count for status, count in rows})
    return counts


def storage_bytes_by_tier(session: Session) -> dict[str, int]:
    """Sum of `storage_used_bytes` per plan (every plan present, zero when it has no users)."""
    totals = dict.fromkeys(session.scalars(select(Plan.key)), 0)
    rows = session.execute(
        select(User.tier, func.coalesce(func.sum(User.storage_used_bytes), 0)).group_by(User.tier)
    )
    totals.update({tier: int(total) for tier, total in rows})
    return totals
