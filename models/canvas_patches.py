"""Incremental canvas saves: an RFC 6902 JSON Patch parsed from bytes and applied to a stored canvas."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
from pydantic import ValidationError

from models.canvas import MAX_REPORTED_ERRORS, CanvasState, Element, check_numbers_fit_jsonb, schema_errors
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
    # A value PostgreSQL's numeric cannot hold is refused as in a full save, not rounded by Python's float.
    check_numbers_fit_jsonb(raw)
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
    raw = _compact(_apply(patch, document))
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


class NeedsWholeCanvas(Exception):
    """The patch looks into a stored element that was not loaded: apply it to the whole canvas instead."""


class StoredElement(MutableMapping):
    """An element of the stored canvas that stays in PostgreSQL: the patch may move or remove it whole."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def _look_inside(self, *_args: Any) -> Any:
        raise NeedsWholeCanvas(self.index)

    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = __contains__ = __eq__ = __ne__ = (
        _look_inside
    )
    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, _memo: dict) -> StoredElement:
        return StoredElement(self.index)


@dataclass(frozen=True)
class StoredSkeleton:
    """What is read of a stored canvas for a patch: everything but the elements the patch does not name."""

    top: dict[str, Any]
    ids: list[Any]
    types: list[Any]
    text_bytes: int
    loaded: dict[int, Any]


@dataclass(frozen=True)
class PatchedCanvas:
    """The patched canvas, validated: its top-level members, and each element as a stored index or JSON."""

    top_json: str
    removed_keys: list[str]
    sources: list[int | None]
    literals: list[str | None]
    changed: list[tuple[int, Element]]
    images: int
    videos: int
    in_place: bool  # every stored element kept its index, and the list its length


def named_elements(patch: jsonpatch.JsonPatch, limit: int) -> list[int] | None:
    """Indices of the stored elements the patch looks into, or None when it should see the whole canvas."""
    named: set[int] = set()
    for operation in patch.patch:
        for pointer in (operation.get("path"), operation.get("from")):
            parts = jsonpointer.JsonPointer(pointer).parts if isinstance(pointer, str) else []
            if parts in ([], ["elements"]):
                if pointer is not None:
                    return None  # the whole canvas or the whole list: not worth a skeleton
                continue
            index = parts[1] if parts[0] == "elements" else ""
            looks_inside = len(parts) > 2 or operation["op"] == "test"
            # Plain indices a canvas can have; anything else is left for jsonpatch to refuse.
            if looks_inside and index.isascii() and index.isdigit() and len(index) <= 6:
                named.add(int(index))
    return sorted(named) if len(named) <= limit else None


def apply_to_skeleton(
    skeleton: StoredSkeleton, patch: jsonpatch.JsonPatch, limits: tuple[int, int]
) -> PatchedCanvas:
    """Apply and validate a patch on what was read; NeedsWholeCanvas when that is not enough to decide."""
    max_elements, max_bytes = limits
    elements = [skeleton.loaded.get(index, StoredElement(index)) for index in range(len(skeleton.ids))]
    patched = _apply(patch, {**skeleton.top, "elements": elements})
    if not isinstance(patched, dict) or not isinstance(patched.get("elements"), list):
        raise NeedsWholeCanvas("the elements are no longer a list")
    elements = patched["elements"]
    stored = [element.index for element in elements if isinstance(element, StoredElement)]
    if len(stored) != len(set(stored)):
        raise NeedsWholeCanvas("a stored element was copied")
    if len(elements) > max_elements:
        raise ValidationFailed(f"A project holds at most {max_elements} elements; got {len(elements)}.")
    top = {key: value for key, value in patched.items() if key != "elements"}
    literals = [None if isinstance(e, StoredElement) else _compact(e) for e in elements]
    changed = _validated(_compact({**top, "elements": []}), literals)
    ids, types = list(skeleton.ids), list(skeleton.types)
    ids = [ids[e.index] if isinstance(e, StoredElement) else changed[i].id for i, e in enumerate(elements)]
    types = [
        types[e.index] if isinstance(e, StoredElement) else changed[i].type for i, e in enumerate(elements)
    ]
    _refuse_duplicate_ids(ids)
    top_json = _compact(top)
    # A stored element's compact JSON is at most its PostgreSQL text (a space after every `:` and `,`).
    bound = len(top_json) + skeleton.text_bytes + sum(len(text) for text in literals if text) + len(elements)
    if bound > max_bytes:
        raise NeedsWholeCanvas("the result may be over the byte cap: measure it exactly")
    return PatchedCanvas(
        top_json=top_json.decode(),
        removed_keys=[key for key in skeleton.top if key not in top],
        sources=[e.index if isinstance(e, StoredElement) else None for e in elements],
        literals=[text.decode() if text else None for text in literals],
        changed=sorted(changed.items()),
        images=types.count("image"),
        videos=types.count("video"),
        in_place=len(elements) == len(skeleton.ids)
        and all(e.index == i for i, e in enumerate(elements) if isinstance(e, StoredElement)),
    )


def _apply(patch: jsonpatch.JsonPatch, document: Any) -> Any:
    try:
        return patch.apply(document, in_place=True)
    except jsonpatch.InvalidJsonPatch as error:
        raise ValidationFailed(f"The JSON Patch is malformed: {error}") from None
    except DOES_NOT_APPLY as error:
        raise PatchConflict(f"The patch does not apply to the stored canvas: {error}") from None


def _compact(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ValidationFailed("The patched canvas state holds a number that is not finite.") from None


def _validated(top: bytes, literals: list[bytes | None]) -> dict[int, Element]:
    """The changed elements parsed by the canvas schema, by index; refused as a full save words it."""
    errors, changed = [], {}
    try:
        CanvasState.model_validate_json(top)
    except ValidationError as error:
        errors += schema_errors(error)
    for index, text in enumerate(literals):
        if text is None:
            continue
        try:
            changed[index] = Element.model_validate_json(text)
        except ValidationError as error:
            errors += [{**item, "loc": ["elements", index, *item["loc"]]} for item in schema_errors(error)]
    if errors:
        raise ValidationFailed("The canvas state does not match the schema.",
                               errors=errors[:MAX_REPORTED_ERRORS], errorCount=len(errors))  # fmt: skip
    return changed


def _refuse_duplicate_ids(ids: list[Any]) -> None:
    seen: set[Any] = set()
    for index, element_id in enumerate(ids):
        if element_id in seen:
            message = f"Value error, elements[{index}].id {element_id!r} is used by an earlier element"
            problem = {"loc": [], "msg": message, "type": "value_error"}
            raise ValidationFailed(
                "The canvas state does not match the schema.", errors=[problem], errorCount=1
            )
        seen.add(element_id)
