"""Receiving an upload: stream the body to a bounded spool, sniff it, store it, then charge the quota.

Order, and why:
1. Content-Length is checked before a byte is read; without it the spool counts bytes as they arrive
   and refuses the moment the plan's per-file limit is passed. Nothing is stored yet.
2. Type (magic bytes) and, for images, header dimensions are checked on the spool: refusals cost no
   storage. A read-only quota check refuses uploads that clearly cannot fit before they are stored.
3. The object is put *before* the transaction, because holding the user's row lock (and a pooled
   connection) across a multi-second upload would serialize that user's uploads and starve the pool.
4. One transaction reserves the bytes (the atomic UPDATE in models.quota) and inserts the row; if it
   refuses or fails, the object is deleted. A crash between 3 and 4 leaves only an object with no row:
   invisible, charged to no one, and removed by the abandoned-upload sweep. The reverse order (commit,
   then put) could leave a charged row pointing at nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import Any, BinaryIO

import structlog
from flask import request
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from models.assets import create_asset, extension_for
from models.errors import (
    BadRequest,
    InvalidMedia,
    PayloadTooLarge,
    ServiceUnavailable,
    StorageError,
    UnsupportedMediaType,
    ValidationFailed,
)
from models.quota import check_room
from models.storage.base import Storage
from models.storage.keys import original_key
from models.tables import Asset
from web.db import db
from web.schemas.assets import GenerationMetadata, UploadHints
from web.services import services
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import (
    ACCEPTED_TYPES_DESCRIPTION,
    SNIFF_BYTES,
    SniffedType,
    check_dimensions,
    image_header_size,
    sniff,
)

log = structlog.get_logger(__name__)

# Up to this much of a file stays in memory; beyond it the spool is a temp file on disk.
SPOOL_MEMORY_BYTES = 1024 * 1024
# Room for the non-file parts (metadata JSON, hints) and multipart framing beyond the file itself.
FORM_OVERHEAD_BYTES = 128 * 1024
# Werkzeug also applies this bound to every chunk it reads (64 KiB) plus what is still buffered, file
# parts included, so it must stay well above the read size; the schemas bound the fields' content.
FIELD_BYTES = 512 * 1024
MAX_PARTS = 8


class _Budget:
    """Bytes allowed across every file part of one request; refuses the write that passes the limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.spools = limit, 0, []

    def spool(self, **_: Any) -> BinaryIO:
        spool = _CountingSpool(self)
        self.spools.append(spool)
        return spool

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise PayloadTooLarge(f"The file exceeds the plan's {self.limit} bytes per file.")

    def close(self) -> None:
        for spool in self.spools:
            spool.close()


class _CountingSpool(SpooledTemporaryFile):
    def __init__(self, budget: _Budget) -> None:
        super().__init__(max_size=SPOOL_MEMORY_BYTES)
        self._budget = budget

    def write(self, data: Any) -> int:
        self._budget.spend(len(data))
        return super().write(data)


@dataclass(frozen=True)
class ReceivedUpload:
    file: BinaryIO
    size: int
    form: MultiDict


def _parse(budget: _Budget, max_file_bytes: int) -> ReceivedUpload:
    if request.mimetype != "multipart/form-data":
        raise BadRequest("Send multipart/form-data with a `file` part.")
    declared = request.content_length
    if declared is not None and declared > max_file_bytes + FORM_OVERHEAD_BYTES:
        raise PayloadTooLarge(f"The file exceeds the plan's {max_file_bytes} bytes per file.")
    # Bounds a chunked body too: the stream stops (413) past this, whatever the parts claim.
    request.max_content_length = max_file_bytes + FORM_OVERHEAD_BYTES
    parser = FormDataParser(
        stream_factory=budget.spool, max_form_memory_size=FIELD_BYTES, max_form_parts=MAX_PARTS
    )
    try:
        _, form, files = parser.parse(request.stream, request.mimetype, declared, request.mimetype_params)
    except RequestEntityTooLarge:
        raise PayloadTooLarge("The request body or one of its fields is too large.") from None
    except ValueError:
        raise BadRequest("The multipart body is malformed.") from None
    if list(files) != ["file"] or len(files.getlist("file")) != 1:
        raise BadRequest("Send exactly one file, in the part named `file`.")
    return ReceivedUpload(file=files["file"].stream, size=budget.used, form=form)


@contextmanager
def receive_upload(max_file_bytes: int) -> Iterator[ReceivedUpload]:
    """The request's one `file`, spooled to a bounded temp file; 413 as soon as it passes the limit."""
    budget = _Budget(max_file_bytes)
    try:
        yield _parse(budget, max_file_bytes)
    finally:
        budget.close()


def parse_fields(form: MultiDict) -> dict[str, Any]:
    """The generation metadata to store (snake_case); hints are range-checked and dropped."""
    try:
        UploadHints.model_validate({key: form[key] for key in ("width", "height", "duration") if key in form})
        raw = json.loads(form["metadata"]) if form.get("metadata") else {}
        metadata = GenerationMetadata.model_validate(raw)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise ValidationFailed("The upload's fields do not match the schema.", errors=errors) from None
    # Not JSON, an integer of more digits than Python converts, or nesting deeper than it parses.
    except (ValueError, RecursionError):
        raise ValidationFailed("`metadata` must be a JSON object.") from None
    unknown = set(form) - {"width", "height", "duration", "metadata"}
    if unknown:
        raise ValidationFailed(f"Unknown form fields: {', '.join(sorted(unknown))}.")
    return metadata.model_dump(exclude_none=True)


def inspect_upload(upload: ReceivedUpload, limits: MediaLimits) -> SniffedType:
    """The type the magic bytes prove (415 otherwise); images also pass SPEC §4 by their header (422)."""
    if upload.size == 0:
        raise InvalidMedia("The file is empty.", code="empty")
    upload.file.seek(0)
    sniffed = sniff(upload.file.read(SNIFF_BYTES))
    if sniffed is None:
        raise UnsupportedMediaType(f"Accepted: {ACCEPTED_TYPES_DESCRIPTION}.")
    if sniffed.kind == "image":
        try:
            check_dimensions(*image_header_size(upload.file, sniffed), limits)
        except MediaRejected as rejected:
            raise InvalidMedia(rejected.detail or rejected.code, code=rejected.code) from None
    upload.file.seek(0)
    return sniffed


def discard(storage: Storage, key: str) -> None:
    """Best-effort removal of an object nothing will point at; the sweep catches what this misses."""
    try:
        storage.delete(key)
    except StorageError:
        log.warning("orphan_object_left", storage_key=key, exc_info=True)


def store_upload(user_id: str, upload: ReceivedUpload, sniffed: SniffedType, generation: dict) -> Asset:
    """Put the original, then reserve quota and insert the row in one transaction; undo the put on failure."""
    storage = services().storage
    asset_id = uuid.uuid4()
    key = original_key(user_id, asset_id, extension_for(sniffed.mime_type))
    with db().begin():
        check_room(db(), user_id, upload.size)
    try:
        storage.put(key, upload.file, content_type=sniffed.mime_type)
    except StorageError as error:
        discard(storage, key)
        raise ServiceUnavailable("Storage is unavailable; try the upload again.") from error
    try:
        with db().begin():
            return create_asset(
                db(),
                asset_id=asset_id,
                user_id=user_id,
                asset_type=sniffed.kind,
                storage_key=key,
                mime_type=sniffed.mime_type,
                size_bytes=upload.size,
                generation=generation,
            )
    except BaseException:
        discard(storage, key)
        raise
