"""The OpenAPI document's tables: headers routes read or send, and what each route adds to spectree's view.

A new route declares here what its decorators cannot say: headers it reads or sends, a non-JSON body, answers
spectree does not see. Statuses every /v1 route shares are derived in web/openapi.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Header:
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


INTEGER = {"type": "integer", "minimum": 0}
HEADERS = {
    "ETag": Header(
        "A tag of what was sent: in If-None-Match it revalidates, a project's in If-Match saves over it.",
        required=True,
    ),
    "Location": Header("The URL of the asset or project the request created.", required=True),
    "Idempotency-Key": Header(
        "1-255 printable ASCII characters: a retry with the same key within 24 h gets the first answer.",
        {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
    ),
    "If-Match": Header(
        "The ETag the change was made against: 412 when stale; absent or `*`, last write wins."
    ),
    "Idempotent-Replayed": Header(
        "`true` when this is the kept answer to an earlier request with the same Idempotency-Key.",
        {"type": "string", "enum": ["true"]},
    ),
    "Accept-Patch": Header("The patch format the route takes (RFC 5789).", required=True),
    "Retry-After": Header("Seconds until the request may succeed.", {"type": "integer", "minimum": 1}, True),
    "WWW-Authenticate": Header(
        'The challenge: `Bearer realm="iskra"` (RFC 6750), on /metrics `Basic realm="metrics"`.',
        required=True,
    ),
    "X-RateLimit-Limit": Header("Requests the tightest rate-limit window allows.", INTEGER),
    "X-RateLimit-Remaining": Header("Requests left in that window.", INTEGER),
    "X-RateLimit-Period": Header(
        "That window.", {"type": "string", "enum": ["perMinute", "perHour", "perDay"]}
    ),
    "RateLimit-Policy": Header("Every window as `limit;w=seconds` (IETF RateLimit draft)."),
    "RateLimit": Header("`limit=L, remaining=R, reset=S` of the tightest window (IETF RateLimit draft)."),
    "Range": Header("A byte range of the object (206, or 416 when it cannot be satisfied)."),
    "If-None-Match": Header("The ETag the client holds: 304 when it is still current."),
    "If-Modified-Since": Header("304 when the object has not changed since."),
    "Last-Modified": Header("When the object was stored.", required=True),
    "Cache-Control": Header(
        "`private, no-cache` on API reads; downloads `private, max-age=<seconds left>, immutable`.",
        required=True,
    ),
    "Content-Range": Header("The range sent (206), or `bytes */size` (416).", required=True),
}
RATE_LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Period",
    "RateLimit-Policy",
    "RateLimit",
)

# Why a route answers a status, when no route says more; a problem's `type` tells the cases apart.
REASONS = {
    400: "The request is malformed: bad query parameters (page size, cursor) or not the form expected.",
    401: "No valid credentials: a bearer token, or for /metrics the scraper's (`unauthorized`).",
    403: "The link is invalid or has expired (`invalid-download-link`).",
    404: "No such resource, or it belongs to someone else (`not-found`).",
    409: "A conflict (`too-many-projects`, `reservation-closed`, `idempotency-key-in-use`).",
    412: "The resource changed since the ETag sent in If-Match (`revision-mismatch`).",
    413: "The body or file is larger than allowed (`payload-too-large`).",
    415: "The media type is not accepted (`unsupported-media-type`).",
    422: "The body does not match its schema or limits (`validation-failed`, `invalid-media`, ...).",
    428: "The change needs an If-Match naming the revision it was made against.",
    429: "A rate-limit window is full (`rate-limited`) or the month's generations are used up.",
    503: "A dependency (database, rate limiter, storage) is unavailable; retry later.",
    507: "The storage quota cannot hold the file (`quota-exceeded`).",
}

PROBLEM = "Problem"
BINARY = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


def _json(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


@dataclass(frozen=True)
class Route:
    """What a route's decorators cannot say; for a route spectree does not see, its whole operation."""

    reads: tuple[str, ...] = ()
    sends: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    rate_limited: bool = False
    # Statuses with content that is no JSON model (a download, an event stream) or none at all (None);
    # a route without `api.validate` lists every answer here, with its summary.
    answers: Mapping[int, Mapping[str, Any] | None] = field(default_factory=dict)
    summary: str = ""


def _multipart(schema_name: str, **encodings: str) -> dict[str, Any]:
    encoding = {name: {"contentType": media_type} for name, media_type in encodings.items()}
    schema = {"$ref": f"#/components/schemas/{schema_name}"}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema, "encoding": encoding}}}


CONDITIONAL = ("If-None-Match",)
ROUTES = {
    "POST /v1/assets": Route(
        body=_multipart("UploadForm", metadata="application/json"), sends={201: ("Location",)}
    ),
    "POST /v1/assets/import": Route(sends={202: ("Location",)}),
    "POST /v1/projects": Route(sends={201: ("ETag", "Location")}),
    "GET /v1/assets/{asset_id}": Route(
        reads=CONDITIONAL, sends={200: ("ETag", "Cache-Control"), 304: ("ETag",)}
    ),
    "GET /v1/projects/{project_id}": Route(
        reads=CONDITIONAL, sends={200: ("ETag", "Cache-Control"), 304: ("ETag",)}
    ),
    "PUT /v1/projects/{project_id}/state": Route(reads=("If-Match",), sends={200: ("ETag",)}),
    "PATCH /v1/projects/{project_id}/state": Route(sends={200: ("ETag",), 415: ("Accept-Patch",)}),
    "PATCH /v1/projects/{project_id}": Route(sends={200: ("ETag",)}),
    "POST /v1/me/generations/reserve": Route(rate_limited=True),
    "GET /files/{token}": Route(
        summary="An object of the local storage backend, by its signed link (Range, conditional GET).",
        reads=("Range", "If-None-Match", "If-Modified-Since"),
        sends={
            200: ("ETag", "Last-Modified", "Cache-Control"),
            206: ("Content-Range",),
            416: ("Content-Range",),
        },
        answers={200: BINARY, 206: BINARY, 304: None, 403: None, 404: None, 416: None, 503: None},
    ),
    "PUT /files/parts/{token}": Route(
        summary="One part of a direct upload to the local storage backend, by its signed part URL.",
        body={"required": True, "content": BINARY},
        sends={200: ("ETag",)},
        answers={200: None, 403: None, 404: None, 413: None, 503: None},
    ),
    "GET /livez": Route(
        summary="The process answers.", answers={200: _json({"$ref": "#/components/schemas/Live"})}
    ),
    "GET /readyz": Route(
        summary="Database, Redis and storage all answer (503 `not-ready` with `checks` otherwise).",
        answers={200: _json({"$ref": "#/components/schemas/Ready"}), 503: None},
    ),
    "GET /metrics": Route(
        summary="Prometheus metrics of every API process (Basic credentials when METRICS_BASIC_AUTH is set).",
        answers={200: {"text/plain": {"schema": {"type": "string"}}}, 401: None},
        sends={401: ("WWW-Authenticate",)},
    ),
    "GET /openapi.json": Route(summary="This document.", answers={200: _json({"type": "object"})}),
}
# Direct uploads (docs/api.md): the bodies @uppy/aws-s3 sends, under the Bearer and the ticket endpoint.
MULTIPART_CREATE = {
    "required": True,
    "content": _json(
        {
            "type": "object",
            "properties": {
                "filename": {"type": "string"},
                "type": {
                    "type": "string",
                    "description": "The declared MIME type (415 outside the accepted).",
                },
                "metadata": {
                    "type": "object",
                    "description": "Uppy's file meta: size, generation fields (name, type, path ignored).",
                },
            },
        }
    ),
}
MULTIPART_COMPLETE = {
    "required": True,
    "content": _json(
        {
            "type": "object",
            "required": ["parts"],
            "properties": {
                "parts": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["PartNumber", "ETag"],
                        "properties": {
                            "PartNumber": {"type": "integer", "minimum": 1, "maximum": 10000},
                            "ETag": {"type": "string", "minLength": 1},
                        },
                    },
                }
            },
        }
    ),
}
for endpoint in ("/v1/uploads", "/v1/uploads/t/{ticket}"):
    ROUTES[f"POST {endpoint}/s3/multipart"] = Route(body=MULTIPART_CREATE)
    ROUTES[f"POST {endpoint}/s3/multipart/{{upload_id}}/complete"] = Route(
        body=MULTIPART_COMPLETE, sends={200: ("Location",)}
    )
HEALTH_SCHEMAS = {
    "Live": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
    "Ready": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"const": "ok"},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}
# Routes that are pages, not API: the static folder and spectree's documentation pages.
