"""The edge of direct uploads: ticket endpoints, Uppy's metadata, absolute URLs and Uppy-readable errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response, g, json, request
from pydantic import ValidationError

from models.direct_uploads import DirectUploads
from models.errors import BadRequest, NotFound, Unauthorized, UnsupportedMediaType, ValidationFailed
from models.storage.multipart import MAX_PART_NUMBER, PartMismatch, UploadMissing
from web.auth import Identity
from web.errors import PROBLEM_TYPE
from web.ratelimit import enforce_ip
from web.schemas.assets import GenerationMetadata, UploadHints
from web.services import services
from web.uploads import UPPY_FIELDS
from workers.media.sniff import ACCEPTED_DESCRIPTION, BY_MIME

# What a browser may call an accepted type besides its canonical name, and what it says when it can't tell.
TYPE_ALIASES = frozenset(
    {"image/jpg", "image/heif", "image/heic-sequence", "image/heif-sequence", "video/avi"}
)
UNKNOWN_TYPES = frozenset({"", "application/octet-stream"})
HINT_FIELDS = ("width", "height", "duration")


def direct_uploads() -> DirectUploads:
    return DirectUploads(services().redis, services().settings.redis_key_prefix)


def authenticate_ticket(values: dict[str, Any] | None) -> None:
    """The ticket in a `/v1/uploads/t/<ticket>` path stands for its user (a bad one counts against the IP)."""
    ticket = (values or {}).pop("ticket", "")
    # The Bearer twin of this path, so an Idempotency-Key means one request through either endpoint.
    g.idempotency_path = request.path.replace(f"/t/{ticket}", "", 1)
    if request.method == "OPTIONS":
        return
    user_id = direct_uploads().ticket_user(ticket)
    if user_id is None:
        raise enforce_ip(Unauthorized("The upload session is unknown or has expired; open a new one."))
    g.identity = Identity(user_id=user_id, email="")


def with_message(response: Response) -> Response:
    """Uppy shows an error's `message`: problem+json answers here carry it, equal to `detail`."""
    if response.mimetype == PROBLEM_TYPE:
        body = json.loads(response.get_data())
        body["message"] = body.get("detail") or body.get("title", "")
        response.set_data(json.dumps(body))
    return response


def api_url(path: str) -> str:
    """`path` (absolute on this API) as a URL a page of another origin can call."""
    return request.url_root.rstrip("/") + path


def json_object() -> dict[str, Any]:
    """The request's JSON object body; 422 for anything else."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object sent as application/json.")
    return body


def declared_type(body: dict[str, Any]) -> str:
    """The client's type, when it is one §4 accepts or says nothing; 415 when it names another."""
    declared, filename = body.get("type"), body.get("filename")
    if not isinstance(declared, str | None) or not isinstance(filename, str | None):
        raise ValidationFailed("`type` and `filename` must be strings.")
    declared = declared or ""
    if declared in UNKNOWN_TYPES or declared in BY_MIME or declared in TYPE_ALIASES:
        return declared
    raise UnsupportedMediaType(f"{declared} is not accepted. Accepted: {ACCEPTED_DESCRIPTION}.")


def parse_uppy_metadata(metadata: Any) -> tuple[dict[str, Any], int | None]:
    """(generation metadata to store, declared size) from Uppy's file meta; its name/type/path are ignored."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValidationFailed("`metadata` must be an object.")
    size = metadata.get("size")
    if isinstance(size, str) and size.isdigit() and len(size) <= 20:
        size = int(size)  # Uppy 5 sends every meta value as a string
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValidationFailed("`metadata.size` must be a whole number of bytes.")
    rest = {key: value for key, value in metadata.items() if key not in UPPY_FIELDS and key != "size"}
    hints = {key: rest.pop(key) for key in HINT_FIELDS if key in rest}
    try:
        UploadHints.model_validate(hints)
        generation = GenerationMetadata.model_validate(rest)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise ValidationFailed("The upload's metadata does not match the schema.", errors=errors) from None
    return generation.model_dump(exclude_none=True), size


def parse_parts(body: dict[str, Any]) -> list[tuple[int, str]]:
    """[(part number, ETag)] from complete's `{parts: [{PartNumber, ETag}]}`."""
    parts = body.get("parts")
    if not isinstance(parts, list) or not parts or len(parts) > MAX_PART_NUMBER:
        raise ValidationFailed("Send `parts`: [{PartNumber, ETag}] of every uploaded part.")
    parsed = []
    for part in parts:
        number = part.get("PartNumber") if isinstance(part, dict) else None
        etag = part.get("ETag") if isinstance(part, dict) else None
        if isinstance(number, str) and number.isdigit():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or not isinstance(etag, str) or not etag:
            raise ValidationFailed("Each part needs a PartNumber and an ETag.")
        parsed.append((number, etag))
    return sorted(parsed)


def part_number(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PART_NUMBER:
        raise BadRequest(f"The part number must be 1-{MAX_PART_NUMBER}.")
    return int(value)


def upload_key() -> str:
    key = request.args.get("key", "")
    if not key:
        raise BadRequest("Send the upload's `key` in the query.")
    return key


@contextmanager
def multipart_refusals() -> Iterator[None]:
    """Storage's refusals of a multipart call as HTTP: a gone upload 404, parts that don't match 400."""
    try:
        yield
    except UploadMissing:
        raise NotFound("No such upload.") from None
    except PartMismatch as mismatch:
        raise BadRequest(f"The parts do not match what was uploaded: {mismatch}") from None
