"""Multipart uploads on local disk: parts under `<root>/.uploads/<upload id>/`, PUT through signed API paths.

A part URL is `/files/parts/<token>`: the token is signed for one upload, one key and one part number,
expires, and carries the most bytes the part may have, so it can write nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO, cast

from itsdangerous import BadData, URLSafeSerializer

from models.errors import InvalidDownloadLink, PayloadTooLarge, StorageError
from models.storage.base import ObjectInfo
from models.storage.keys import validate_key
from models.storage.multipart import (
    MAX_PART_NUMBER,
    IncompleteUpload,
    PartMismatch,
    UploadedPart,
    UploadMissing,
    bare_etag,
)

UPLOADS_DIR = ".uploads"
PART_PATH = "/files/parts/"
_PART_SALT = "iskra.storage.local-part-upload"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PartGrant:
    key: str
    upload_id: str
    part_number: int
    max_bytes: int
    expires_at: int


class PartSigner:
    """Signs and checks single-purpose part-upload tokens."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_PART_SALT)

    def sign(self, key: str, upload_id: str, part_number: int, *, expires_in: int, max_bytes: int) -> str:
        expires_at = int(time.time()) + expires_in
        payload = {"k": key, "u": upload_id, "n": part_number, "m": max_bytes, "e": expires_at}
        return self._serializer.dumps(payload)

    def verify(self, token: str) -> PartGrant:
        """The grant in `token`; InvalidDownloadLink (403) when tampered, malformed or expired."""
        try:
            payload = self._serializer.loads(token)
            grant = PartGrant(
                validate_key(payload["k"]), _checked_id(payload["u"]), int(payload["n"]), int(payload["m"]),
                int(payload["e"]),
            )  # fmt: skip
        except (BadData, KeyError, TypeError, ValueError) as error:
            raise InvalidDownloadLink("The part upload link is invalid") from error
        if grant.expires_at <= time.time():
            raise InvalidDownloadLink("The part upload link has expired")
        return grant


def _checked_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise ValueError(f"invalid upload id: {upload_id!r}")
    return upload_id


class LocalMultipart:
    """Mixed into LocalStorage: `root`, `put` and `head` are its."""

    root: Path
    part_signer: PartSigner

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> ObjectInfo:
        raise NotImplementedError

    def _upload_dir(self, upload_id: str) -> Path:
        try:
            return self.root / UPLOADS_DIR / _checked_id(upload_id)
        except ValueError:
            raise UploadMissing(upload_id) from None

    def _manifest(self, key: str, upload_id: str) -> dict:
        directory = self._upload_dir(upload_id)
        try:
            manifest = json.loads((directory / "upload.json").read_bytes())
        except (OSError, ValueError):
            raise UploadMissing(upload_id) from None
        if manifest.get("key") != key:
            raise UploadMissing(upload_id)
        return manifest

    def create_multipart(self, key: str, *, content_type: str) -> str:
        upload_id = uuid.uuid4().hex
        directory = self._upload_dir(upload_id)
        manifest = {"key": validate_key(key), "content_type": content_type, "initiated": time.time()}
        try:
            directory.mkdir(parents=True)
            (directory / "upload.json").write_text(json.dumps(manifest))
        except OSError as error:
            raise StorageError(f"local create multipart failed: {error}") from error
        return upload_id

    def part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int, max_bytes: int) -> str:
        token = self.part_signer.sign(key, upload_id, part_number, expires_in=expires_in, max_bytes=max_bytes)
        return PART_PATH + token

    def write_part(self, grant: PartGrant, stream: IO[bytes]) -> str:
        """Store one part a signed URL granted; its ETag. PayloadTooLarge past the grant's bytes."""
        self._manifest(grant.key, grant.upload_id)
        if not 1 <= grant.part_number <= MAX_PART_NUMBER:
            raise UploadMissing(grant.upload_id)
        directory = self._upload_dir(grant.upload_id)
        digest, size = hashlib.md5(usedforsecurity=False), 0
        staged = directory / f".part-{uuid.uuid4().hex}"
        try:
            with staged.open("wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > grant.max_bytes:
                        raise PayloadTooLarge(f"A part may have at most {grant.max_bytes} bytes.")
                    out.write(chunk)
                    digest.update(chunk)
            etag = digest.hexdigest()
            (directory / f"{grant.part_number}.json").write_text(json.dumps({"etag": etag, "size": size}))
            os.replace(staged, directory / f"{grant.part_number}.part")
        except OSError as error:
            raise StorageError(f"local part write failed: {error}") from error
        finally:
            staged.unlink(missing_ok=True)
        return etag

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        self._manifest(key, upload_id)
        directory, parts = self._upload_dir(upload_id), []
        for path in directory.glob("*.part"):
            number = int(path.stem)
            try:
                meta = json.loads((directory / f"{number}.json").read_bytes())
            except (OSError, ValueError):
                continue  # a part still being replaced
            parts.append(UploadedPart(number, meta["size"], meta["etag"]))
        return sorted(parts, key=lambda part: part.number)

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> ObjectInfo:
        manifest = self._manifest(key, upload_id)
        uploaded = {part.number: part for part in self.list_parts(key, upload_id)}
        numbers = [number for number, _ in parts]
        if not parts or numbers != sorted(set(numbers)):
            raise PartMismatch("parts must be listed once each, in ascending order")
        for number, etag in parts:
            if number not in uploaded or uploaded[number].etag != bare_etag(etag):
                raise PartMismatch(f"part {number} was not uploaded with that ETag")
        directory = self._upload_dir(upload_id)
        with _Joined([directory / f"{number}.part" for number in numbers]) as joined:
            info = self.put(key, cast(BinaryIO, joined), content_type=manifest["content_type"])
        self.abort_multipart(key, upload_id)
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._manifest(key, upload_id)
        except UploadMissing:
            return
        shutil.rmtree(self._upload_dir(upload_id), ignore_errors=True)

    def incomplete_uploads(self, started_before: datetime) -> Iterator[IncompleteUpload]:
        uploads = self.root / UPLOADS_DIR
        if not uploads.is_dir():
            return
        for directory in sorted(uploads.iterdir()):
            try:
                manifest = json.loads((directory / "upload.json").read_bytes())
            except (OSError, ValueError):
                continue
            initiated = datetime.fromtimestamp(manifest["initiated"], UTC)
            if initiated < started_before:
                yield IncompleteUpload(manifest["key"], directory.name, initiated)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with self.open(key) as stream:  # type: ignore[attr-defined]
            stream.seek(offset)
            return stream.read(length)


class _Joined:
    """The parts' files read one after another as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = list(paths)
        self._current: BinaryIO | None = None

    def __enter__(self) -> _Joined:
        return self

    def __exit__(self, *_: object) -> None:
        if self._current is not None:
            self._current.close()

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._current is None:
                if not self._paths:
                    return b""
                self._current = self._paths.pop(0).open("rb")
            chunk = self._current.read(size)
            if chunk:
                return chunk
            self._current.close()
            self._current = None
