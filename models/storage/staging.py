"""Put an object, then record it: the one way a new original enters storage, whatever the door.

The object is put *before* the transaction that records it, because holding a user's row lock (and a
pooled connection) across a multi-second put would serialize that user's uploads and starve the pool.
If recording fails or finds nothing to record, the object is deleted again. A crash between the two
leaves only an object no row references: invisible, charged to no one, removed by the abandoned-object
sweep. The reverse order (commit, then put) could leave a charged row pointing at nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import structlog

from models.errors import StorageError
from models.storage.base import ObjectInfo, Storage

log = structlog.get_logger(__name__)


class Staged:
    """An object just put; deleted when its block ends unless `recorded()` was called."""

    def __init__(self, info: ObjectInfo) -> None:
        self.info = info
        self.kept = False

    def recorded(self) -> None:
        """The row that references the object has committed: keep it."""
        self.kept = True


@contextmanager
def put_then_record(storage: Storage, key: str, stream: BinaryIO, *, content_type: str) -> Iterator[Staged]:
    """Put `stream` under `key`; the block records it and calls `recorded()`, or the object goes again."""
    try:
        info = storage.put(key, stream, content_type=content_type)
    except StorageError:
        discard(storage, key)  # a put that failed half-way may have left bytes behind
        raise
    with record_or_discard(storage, info) as staged:
        yield staged


@contextmanager
def record_or_discard(storage: Storage, info: ObjectInfo) -> Iterator[Staged]:
    """An object already stored (a completed direct upload): the block records it, or it is deleted."""
    staged = Staged(info)
    try:
        yield staged
    finally:
        if not staged.kept:
            discard(storage, info.key)


def discard(storage: Storage, key: str) -> None:
    """Best-effort removal of an object nothing will point at; the sweep catches what this misses."""
    try:
        storage.delete(key)
    except StorageError:
        log.warning("orphan_object_left", storage_key=key, exc_info=True)
