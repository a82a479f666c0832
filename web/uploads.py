"""Receiving an upload: stream the body to a bounded spool, and say what refused media means over HTTP.

Content-Length is checked before a byte is read; without it the spool counts bytes as they arrive and
refuses the moment the plan's per-file limit is passed. Nothing is stored until the bytes are vetted
(workers.media.vet) and stored through models.storage.staging.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import request
from multipart import MultipartError, MultipartSegment, ParserLimitReached, PushMultipartParser
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

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

# Room for the non-file parts (metadata JSON, hints) and multipart framing beyond the file itself.
FORM_OVERHEAD_BYTES = 128 * 1024
# The most a non-file part may hold; the schemas bound the fields' content.
FIELD_BYTES = 512 * 1024
MAX_PARTS = 8
# The body is read and parsed a MiB at a time: few enough calls that the parser's work per upload is a
# few large `bytes.find`s and copies rather than thousands of small ones.
READ_BYTES = 1024 * 1024
DIGEST_READ_BYTES = 1024 * 1024
# What Uppy sends of every file by default (its meta: the name and type the browser reported, and the path
# in a dropped folder). Nothing is taken from them: the type is sniffed and keys are made by the server.
UPPY_FIELDS = frozenset({"name", "type", "relativePath"})
FILE_PART = "file"


@dataclass(frozen=True)
class ReceivedUpload:
    file: BinaryIO
    size: int
    form: MultiDict


class _Parts:
    """Where each part of the body goes: the one file part into a spool, counted against the plan's limit;
    the other parts, bounded, into the form."""

    def __init__(self, new_spool: Callable[[], BinaryIO], max_file_bytes: int) -> None:
        self.new_spool, self.max_file_bytes = new_spool, max_file_bytes
        self.form: MultiDict = MultiDict()
        self.file: BinaryIO | None = None
        self.file_bytes = 0
        self._writing: BinaryIO | None = None  # the spool, while the file part's bytes arrive
        self._field: bytearray | None = None  # a form field's bytes, while they arrive

    def start(self, segment: MultipartSegment) -> None:
        if segment.filename is None:
            self._field = bytearray()
        elif segment.name != FILE_PART or self.file is not None:
            raise BadRequest("Send exactly one file, in the part named `file`.")
        else:
            self.file = self._writing = self.new_spool()

    def data(self, chunk: bytes) -> None:
        if self._writing is not None:
            self.file_bytes += len(chunk)
            if self.file_bytes > self.max_file_bytes:
                raise PayloadTooLarge(f"The file exceeds the plan's {self.max_file_bytes} bytes per file.")
            self._writing.write(chunk)
        elif self._field is not None:
            self._field += chunk
            if len(self._field) > FIELD_BYTES:
                raise PayloadTooLarge("The request body or one of its fields is too large.")

    def end(self, segment: MultipartSegment) -> None:
        if self._field is not None:
            self.form.add(segment.name or "", self._field.decode(segment.charset or "utf-8", "replace"))
        self._field = self._writing = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _read_parts(parts: _Parts) -> BinaryIO:
    """Parse the request's body into `parts`; the file part's spool, or the refusal."""
    if request.mimetype != "multipart/form-data" or not request.mimetype_params.get("boundary"):
        raise BadRequest("Send multipart/form-data with a `file` part.")
    limit = parts.max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The file exceeds the plan's {parts.max_file_bytes} bytes per file.")
    segment: MultipartSegment | None = None
    try:
        parser = PushMultipartParser(
            request.mimetype_params["boundary"],
            content_length=-1 if declared is None else declared,
            max_segment_count=MAX_PARTS,
        )
        with parser:
            chunks = _body(declared, limit)
            while not parser.closed:
                chunk = next(chunks, b"")
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment = event
                        parts.start(segment)
                    elif event is not None:
                        parts.data(event)
                    elif segment is not None:
                        parts.end(segment)
                if not chunk:
                    break
    except ParserLimitReached:
        raise PayloadTooLarge("The request body or one of its fields is too large.") from None
    except MultipartError:
        raise BadRequest("The multipart body is malformed.") from None
    if parts.file is None:
        raise BadRequest("Send exactly one file, in the part named `file`.")
    return parts.file


def _body(declared: int | None, limit: int) -> Iterator[bytes]:
    """The request body a MiB at a time, straight from the server's stream (werkzeug's wrapper around it
    copies every chunk twice more), to `declared` bytes or, chunked, to its end; 413 past `limit` bytes."""
    environ = request.environ
    if declared is None and not environ.get("wsgi.input_terminated"):
        return  # neither a length nor a chunked body: no body (WSGI forbids reading past the end)
    stream, received = environ["wsgi.input"], 0
    while declared is None or received < declared:
        wanted = READ_BYTES if declared is None else min(READ_BYTES, declared - received)
        try:
            chunk = stream.read(wanted)
        except (OSError, ValueError):  # the connection broke (as werkzeug's own stream treats it)
            chunk = b""
        if not chunk:
            return  # the client stopped early: the parser finds the body incomplete
        received += len(chunk)
        if received > limit:  # a chunked body; a declared length was checked before the first byte
            raise PayloadTooLarge("The request body or one of its fields is too large.")
        yield chunk


@contextmanager
def receive_upload(max_file_bytes: int, new_spool: Callable[[], BinaryIO]) -> Iterator[ReceivedUpload]:
    """The request's one `file`, streamed into a `new_spool()` (the storage's); 413 as soon as it passes
    the limit. The spool is closed when the block ends."""
    parts = _Parts(new_spool, max_file_bytes)
    try:
        file = _read_parts(parts)
        file.seek(0)
        yield ReceivedUpload(file=file, size=parts.file_bytes, form=parts.form)
    finally:
        parts.close()


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
