"""The storage interface every backend implements; backend errors never leak past it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol

from models.storage.multipart import MultipartStorage


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # opaque: changes whenever the object's bytes do (S3's MD5-based tag; local mtime and size)
    content_type: str | None
    last_modified: datetime


class Storage(MultipartStorage, Protocol):
    """Byte-exact object storage addressed by server-made keys (never user input verbatim), with the
    multipart uploads browsers write through (models.storage.multipart)."""

    def spool(self) -> BinaryIO:
        """An empty temp file to receive an original into before `put`, placed where this backend stores it
        without copying its bytes again (local disk: an unnamed file on the same file system, which `put`
        links into place). It vanishes when closed or when the process dies."""
        ...

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> ObjectInfo:
        """Store everything `stream` yields under `key`, streaming (never the whole body in memory)."""
        ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A readable stream of the object; raises ObjectMissing when absent."""
        ...

    def download_to(self, key: str, path: str) -> None:
        """Copy the object to a local file (workers hand ffmpeg a path)."""
        ...

    def head(self, key: str) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def url(
        self, key: str, *, expires_in: int, content_type: str | None = None, signed_at: int | None = None
    ) -> str:
        """A download URL valid `expires_in` s from `signed_at` (epoch s, default now); same inputs, same URL.

        Presigned for S3, an HMAC-signed API path for local.
        """
        ...

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (maintenance sweeps)."""
        ...

    def check(self) -> None:
        """Raise StorageError when the backend cannot be used (readiness)."""
        ...
