"""Self-healing storage: remove objects no row owns.

Safe when two beat schedulers fire at once: the sweep (like usage reconciliation) runs only under a
transaction-scoped advisory lock. Stalled assets are handed back by models.asset_lifecycle.requeue_stuck.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, union
from sqlalchemy.orm import Session

from models.asset_lifecycle import UNFINISHED
from models.renditions import KEY_COLUMNS
from models.storage import Storage
from models.storage.keys import ORIGINALS_PREFIX, PROJECTS_PREFIX, RENDITIONS_PREFIX
from models.tables import Asset, Project

# pg advisory lock ids of the jobs that must not run twice at once (beat started twice, or the CLI).
SWEEP_LOCK = 7283101
RECONCILE_LOCK = 7283102
SWEPT_PREFIXES = (ORIGINALS_PREFIX, RENDITIONS_PREFIX, PROJECTS_PREFIX)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
    referenced = union(
        *(select(column.label("key")).where(column.in_(keys)) for column in KEY_COLUMNS),
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
