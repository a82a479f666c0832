"""Incremental canvas saves: an RFC 6902 JSON Patch parsed from bytes and applied to a stored canvas."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer

from models.errors import BadRequest, PatchConflict, PayloadTooLarge, ValidationFailed

MEDIA_TYPE = "application/json-patch+json"
AssetReference = tuple[Any, Any]
# A missing member or index, an index past the end, a `test` that fails: the patch's base is not ours.
DOES_NOT_APPLY = (
    jsonpatch.JsonPatchConflict,
    jsonpatch.JsonPatchTestFailed,
    jsonpointer.JsonPointerException,
)


def parse_canvas_patch(raw: bytes) -> jsonpatch.JsonPatch:
    """The body as a JSON Patch: BadRequest (400) if it is not JSON, ValidationFailed (422) if no patch."""
    try:
        document = json.loads(raw, parse_constant=_refuse_non_finite)
    except (ValueError, RecursionError):
        raise BadRequest("The body is not UTF-8 JSON with finite numbers.") from None
    if not isinstance(document, list) or not all(isinstance(operation, dict) for operation in document):
        raise ValidationFailed("A JSON Patch is an array of operation objects (RFC 6902).")
    try:
        return jsonpatch.JsonPatch(document)
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException, TypeError) as error:
        raise ValidationFailed(f"The JSON Patch is malformed: {error}") from None


def apply_canvas_patch(document: Any, patch: jsonpatch.JsonPatch, max_bytes: int) -> bytes:
    """The patched canvas as compact JSON bytes (as a browser's full save sends it); consumes `document`.

    A patch that names a member or index the canvas does not have, or whose `test` fails, is a 409
    PatchConflict: RFC 5789 §2.2 calls both "conflicting state" (the change was made against a canvas
    that is not the stored one), the same answer whichever of the two it is. A malformed operation found
    only while applying (an `add` without `value`) is a 422, like any body that breaks its schema.
    """
    try:
        patched = patch.apply(document, in_place=True)
    except jsonpatch.InvalidJsonPatch as error:
        raise ValidationFailed(f"The JSON Patch is malformed: {error}") from None
    except DOES_NOT_APPLY as error:
        raise PatchConflict(f"The patch does not apply to the stored canvas: {error}") from None
    try:
        raw = json.dumps(patched, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ValidationFailed("The patched canvas state holds a number that is not finite.") from None
    # The cap on a full save's body holds for the canvas a patch produces, or patches could outgrow it.
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The patched canvas state would be {len(raw)} bytes; the cap is {max_bytes}.")
    return raw


def asset_references(document: Any) -> set[AssetReference]:
    """The (assetId, assetType) pairs a stored canvas's elements already name."""
    elements = document.get("elements") if isinstance(document, dict) else None
    if not isinstance(elements, list):
        return set()
    return {(item.get("assetId"), item.get("assetType")) for item in elements if isinstance(item, dict)}


def _refuse_non_finite(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")
