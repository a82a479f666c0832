"""Receiving an upload: stream the body to a bounded spool, and say what refused media means over HTTP.

Content-Length is checked before a byte is read; without it the spool counts bytes as they arrive and
refuses the moment the plan's per-file limit is passed. Nothing is stored until the bytes are vetted
(workers.media.vet) and stored through models.storage.staging.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import IO, Any, BinaryIO, cast

from flask import request
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from models.errors import (
    BadRequest,
    DomainError,
    InvalidMedia,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from web.schemas.assets import GenerationMetadata, UploadHints
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import ACCEPTED_DESCRIPTION, SniffedType
from workers.media.vet import vet

# Up to this much of a file stays in memory; beyond it the spool is a temp file on disk.
SPOOL_MEMORY_BYTES = 1024 * 1024
# Room for the non-file parts (metadata JSON, hints) and multipart framing beyond the file itself.
FORM_OVERHEAD_BYTES = 128 * 1024
# Werkzeug also applies this bound to every chunk it reads (64 KiB) plus what is still buffered, file
# parts included, so it must stay well above the read size; the schemas bound the fields' content.
FIELD_BYTES = 512 * 1024
MAX_PARTS = 8
READ_AHEAD_BYTES = 1024 * 1024
DIGEST_READ_BYTES = 1024 * 1024
# What Uppy sends of every file by default (its meta: the name and type the browser reported, and the path
# in a dropped folder). Nothing is taken from them: the type is sniffed and keys are made by the server.
UPPY_FIELDS = frozenset({"name", "type", "relativePath"})


class _Budget:
    """Bytes allowed across every file part of one request; refuses the write that passes the limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.spools: list[_CountingSpool] = []

    def spool(self, *_: Any, **__: Any) -> IO[bytes]:
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


class _CountingSpool(SpooledTemporaryFile[bytes]):
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
    # Werkzeug reads 64 KiB at a time, and each read from gunicorn's body copies what it holds read
    # ahead (up to 1 MiB) twice over; a buffer of that size between them makes it one copy per MiB.
    stream = request.stream
    body = io.BufferedReader(stream, READ_AHEAD_BYTES) if isinstance(stream, io.RawIOBase) else None
    try:
        _, form, files = parser.parse(body or stream, request.mimetype, declared, request.mimetype_params)
    except RequestEntityTooLarge:
        raise PayloadTooLarge("The request body or one of its fields is too large.") from None
    except ValueError:
        raise BadRequest("The multipart body is malformed.") from None
    finally:
        if body is not None:
            body.detach()  # the request's stream is werkzeug's to close
    if list(files) != ["file"] or len(files.getlist("file")) != 1:
        raise BadRequest("Send exactly one file, in the part named `file`.")
    # The stream is one of our binary spools; werkzeug types it as the wider IO[bytes].
    return ReceivedUpload(file=cast(BinaryIO, files["file"].stream), size=budget.used, form=form)


@contextmanager
def receive_upload(max_file_bytes: int) -> Iterator[ReceivedUpload]:
    """The request's one `file`, spooled to a bounded temp file; 413 as soon as it passes the limit."""
    budget = _Budget(max_file_bytes)
    try:
        yield _parse(budget, max_file_bytes)
    finally:
        budget.close()


def upload_digest(upload: ReceivedUpload) -> str:
    """A hash of what an upload says, its form fields and its file's bytes, whatever its multipart framing.

    The boundary, the part headers and the file name are left out: a browser's retry changes the
    first, and the API neither stores nor trusts the others.
    """
    digest = hashlib.sha256(json.dumps(sorted(upload.form.items(multi=True))).encode())
    upload.file.seek(0)
    while chunk := upload.file.read(DIGEST_READ_BYTES):
        digest.update(chunk)
    upload.file.seek(0)
    return digest.hexdigest()


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
    unknown = set(form) - {"width", "height", "duration", "metadata"} - UPPY_FIELDS
    if unknown:
        raise ValidationFailed(f"Unknown form fields: {', '.join(sorted(unknown))}.")
    return metadata.model_dump(exclude_none=True)


def media_refusal(rejected: MediaRejected) -> DomainError:
    """The HTTP refusal for media the intake refused: 415 for a type not accepted, 422 for the rest."""
    if rejected.code == "unsupported-format":
        return UnsupportedMediaType(f"Accepted: {ACCEPTED_DESCRIPTION}.")
    return InvalidMedia(rejected.detail or rejected.code, code=rejected.code)


def vetted(upload: ReceivedUpload, limits: MediaLimits) -> SniffedType:
    """The upload's type as its bytes prove it, or the HTTP refusal (415, 422 with a `code`)."""
    return vetted_stream(upload.file, limits)


def vetted_stream(stream: BinaryIO, limits: MediaLimits) -> SniffedType:
    """What seekable `stream`'s bytes prove them to be, or the HTTP refusal (415, 422 with a `code`)."""
    try:
        return vet(stream, limits)
    except MediaRejected as rejected:
        raise media_refusal(rejected) from None
