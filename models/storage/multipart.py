"""Multipart uploads, the part of the storage interface browsers write through (SPEC §12).

A client creates an upload, PUTs its parts straight to URLs the backend signs, and the server completes
it into one object. Both backends implement `MultipartStorage`: S3 with its own multipart API, the local
disk with parts under a hidden directory of its root and part URLs served by the API.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from models.errors import StorageError

if TYPE_CHECKING:
    from models.storage.base import ObjectInfo

# S3's bounds: parts are numbered 1..10,000.
MAX_PART_NUMBER = 10_000
RANGE_BYTES = 256 * 1024


class UploadMissing(StorageError):
    """The multipart upload does not exist (never made, completed, aborted or swept)."""


class PartMismatch(StorageError):
    """A part named at completion is missing or its ETag differs from what was uploaded."""


@dataclass(frozen=True)
class UploadedPart:
    number: int
    size: int
    etag: str  # without quotes


@dataclass(frozen=True)
class IncompleteUpload:
    key: str
    upload_id: str
    initiated: datetime


def bare_etag(etag: str) -> str:
    """An ETag without its surrounding quotes (Uppy 6 strips them, Uppy 5 and S3 keep them)."""
    return etag.strip().strip('"')


class MultipartStorage(Protocol):
    """Resumable uploads whose parts the client sends to the storage directly."""

    def create_multipart(self, key: str, *, content_type: str) -> str:
        """Start an upload to `key`; its upload id."""
        ...

    def part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int, max_bytes: int) -> str:
        """Where the client PUTs one part (no Content-Type signed); absolute for S3, an API path for local."""
        ...

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts uploaded so far, by number; UploadMissing when there is no such upload."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> ObjectInfo:
        """Join (part number, ETag) in order into the object; UploadMissing, PartMismatch when refused."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; aborting a missing upload is not an error."""
        ...

    def incomplete_uploads(self, started_before: datetime) -> Iterator[IncompleteUpload]:
        """Uploads begun before `started_before` and neither completed nor aborted (maintenance)."""
        ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes of the object from `offset` (fewer at its end), by a ranged read."""
        ...


class RangedObject(io.RawIOBase):
    """A stored object as a seekable stream that fetches only the ranges read (header checks)."""

    def __init__(self, storage: MultipartStorage, key: str, size: int) -> None:
        self._storage, self._key, self._size, self._position = storage, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        data = self._storage.read_range(self._key, self._position, wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def ranged_reader(storage: MultipartStorage, key: str, size: int) -> BinaryIO:
    """A buffered, seekable reader of the object that reads it by ranges of at least 256 KiB."""
    return io.BufferedReader(RangedObject(storage, key, size), buffer_size=RANGE_BYTES)


def abort_incomplete_uploads(storage: MultipartStorage, started_before: datetime) -> list[IncompleteUpload]:
    """Abort every upload begun before `started_before` and still incomplete; those aborted.

    Aborting is idempotent, so two maintenance runs at once at worst both abort the same upload.
    """
    stale = list(storage.incomplete_uploads(started_before))
    for upload in stale:
        storage.abort_multipart(upload.key, upload.upload_id)
    return stale
