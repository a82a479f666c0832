"""Numbers operators watch: assets by status, stored bytes by tier, messages waiting per queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.tables import ASSET_STATUSES, Asset, Plan, User
from models.taskqueue import QUEUES

# Kombu's Redis transport keeps one list per priority step; priority 0 is the bare queue name.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def asset_counts_by_status(session: Session) -> dict[str, int]:
    """How many assets are in each status (every known status present, zero when none)."""
    counts = dict.fromkeys(ASSET_STATUSES, 0)
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


def queue_depths(broker: Any, key_prefix: str = "") -> dict[str, int]:
    """Messages waiting (not yet taken by a worker) in each Celery queue on a Redis broker.

    With `global_keyprefix` the transport stores a queue's list at `<prefix><queue>`.
    """
    with broker.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(f"{key_prefix}{queue}{suffix}")
        lengths = pipe.execute()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(lengths[i * step : (i + 1) * step]) for i, queue in enumerate(QUEUES)}
