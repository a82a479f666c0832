"""Self-healing: re-queue assets whose processing stalled, and remove objects no row owns.

Both are safe when two beat schedulers fire at once: stalled rows are claimed with
`FOR UPDATE SKIP LOCKED`, and the sweep (like usage reconciliation) runs only under a
transaction-scoped advisory lock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select, text, union, update
from sqlalchemy.orm import Session

from models.storage import Storage
from models.storage.keys import ORIGINALS_PREFIX, PROJECTS_PREFIX, RENDITIONS_PREFIX
from models.tables import Asset, Project
from models.taskqueue import LONGEST_TASK_SECONDS

ABANDONED_ERROR = "processing-abandoned"
UNFINISHED = ("pending", "processing")
# pg advisory lock ids of the jobs that must not run twice at once (beat started twice, or the CLI).
SWEEP_LOCK = 7283101
RECONCILE_LOCK = 7283102
SWEPT_PREFIXES = (ORIGINALS_PREFIX, RENDITIONS_PREFIX, PROJECTS_PREFIX)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# The `requeued` group of imports whose download never completed: they go back to the import task.
IMPORT_GROUP = "import"


class Requeued(NamedTuple):
    """Asset ids sent back to their queue (by asset type, or IMPORT_GROUP) and ids given up on as failed."""

    requeued: dict[str, list[str]]
    failed: list[str]


def requeue_stuck_assets(
    session: Session, older_than: timedelta, max_attempts: int, limit: int = 500
) -> Requeued:
    """Reset assets unfinished for longer than `older_than` to pending, or fail them past `max_attempts`.

    The caller commits, then sends one rendition task per re-queued id. Workers count attempts when
    they claim an asset, so an input that kills its worker every time ends failed, not in a loop.
    """
    if older_than.total_seconds() <= LONGEST_TASK_SECONDS:
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
            .values(status="failed", error=ABANDONED_ERROR, updated_at=func.now())
        )
    if retried:
        # Touching updated_at restarts the clock, so the next run leaves them alone while they wait.
        session.execute(
            update(Asset)
            .where(Asset.id.in_([row.id for row in retried]))
            .values(status="pending", updated_at=func.now())
        )
    by_type: dict[str, list[str]] = {}
    for row in retried:
        # An import with no bytes yet has no original to render: it needs its download again.
        group = IMPORT_GROUP if row.original_url and not row.size_bytes else row.type
        by_type.setdefault(group, []).append(str(row.id))
    return Requeued(by_type, [str(asset_id) for asset_id in failed])


def try_sweep_lock(session: Session) -> bool:
    """Take the sweep's advisory lock for this transaction; False when another sweep holds it."""
    return _try_xact_lock(session, SWEEP_LOCK)


def try_reconcile_lock(session: Session) -> bool:
    """Take the usage reconciliation's advisory lock for this transaction; False when another run holds it."""
    return _try_xact_lock(session, RECONCILE_LOCK)


def _try_xact_lock(session: Session, key: int) -> bool:
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))


def abandoned_objects(
    session: Session, storage: Storage, grace: timedelta, now: datetime | None = None
) -> Iterator[str]:
    """Keys under originals/, renditions/ and projects/ older than `grace` that no row owns.

    A key a row references is owned. Any other original or rendition named after an asset belongs to it
    only while the asset is unfinished (an attempt may still be about to record it); once the asset is
    ready or failed, what it does not reference was left by a dead or losing attempt. A project
    thumbnail is owned only while it is the project's current one.
    """
    cutoff = (now or datetime.now(UTC)) - grace
    for prefix in SWEPT_PREFIXES:
        old = (info.key for info in storage.iter_objects(prefix) if info.last_modified < cutoff)
        for batch in _batches(old, 500):
            owned = _owned_keys(session, batch)
            yield from (key for key in batch if key not in owned)


def delete_abandoned_objects(
    session: Session, storage: Storage, grace: timedelta, now: datetime | None = None
) -> list[str]:
    """Delete every abandoned object (see `abandoned_objects`); the keys removed."""
    # Listing is lazy per batch; deleting after each batch keeps memory flat on big buckets.
    deleted = []
    for key in abandoned_objects(session, storage, grace, now):
        storage.delete(key)
        deleted.append(key)
    return deleted


def _owned_keys(session: Session, keys: list[str]) -> set[str]:
    ids = {key: _owner_id(key) for key in keys}
    owner_ids = {owner for owner in ids.values() if owner is not None}
    asset_keys = [
        Asset.storage_key,
        Asset.thumbnail_key,
        Asset.preview_key,
        Asset.poster_key,
        Asset.display_key,
    ]
    referenced = union(
        *(select(column.label("key")).where(column.in_(keys)) for column in asset_keys),
        select(Project.thumbnail_key.label("key")).where(Project.thumbnail_key.in_(keys)),
    )
    owned = set(session.scalars(select(referenced.subquery().c.key)))
    unfinished = select(Asset.id).where(Asset.id.in_(owner_ids), Asset.status.in_(UNFINISHED))
    working = set(session.scalars(unfinished)) if owner_ids else set()
    owned.update(
        key for key, owner in ids.items() if owner in working and not key.startswith(PROJECTS_PREFIX)
    )
    return owned


def _owner_id(key: str) -> uuid.UUID | None:
    """The asset or project id a key is named after (originals/<user>/<id>.<ext>, renditions/<id>/…)."""
    match = _UUID.search(key)
    return uuid.UUID(match.group()) if match else None


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
