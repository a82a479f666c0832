"""The canvasState schema (docs/api.md): strict, finite, unknown keys refused, parsed straight from bytes."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from models.errors import ValidationFailed

# PostgreSQL's jsonb refuses \u0000, so it is refused here instead of failing the UPDATE.
Text = Annotated[str, StringConstraints(max_length=2048, pattern=r"^[^\x00]*$")]
ElementId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]*$")]
HexColour = Annotated[
    str, StringConstraints(pattern=r"^#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
]
NonNegative = Annotated[float, Field(ge=0)]
# Shown to the client at most this many validation errors; the rest are counted.
MAX_REPORTED_ERRORS = 20
# jsonb keeps each number as PostgreSQL's numeric, from the text as sent: at most this many digits after
# the decimal point and before it, and an exponent PostgreSQL parses as an int. `1e-20000` is 0.0 to
# pydantic and an overflow to PostgreSQL.
NUMERIC_MAX_SCALE = 16383
NUMERIC_MAX_INTEGER_DIGITS = 131072
NUMERIC_MAX_EXPONENT = 2**30 - 1


class Strict(BaseModel):
    """Unknown keys refused, no type coercion ("1" is not a number), no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Transform(Strict):
    x: float
    y: float
    scale: float
    rotation: float


class Viewport(Strict):
    x: float
    y: float
    scale: float


class Element(Strict):
    id: ElementId
    type: Literal["image", "video", "text", "shape"]
    transform: Transform
    zIndex: float
    width: NonNegative | None = None
    height: NonNegative | None = None
    assetId: Text | None = None
    assetType: Literal["image", "video"] | None = None
    assetSyncedAt: float | None = None
    originalFalUrl: Text | None = None
    currentTime: NonNegative | None = None
    duration: NonNegative | None = None
    isPlaying: bool | None = None
    volume: Annotated[float, Field(ge=0, le=1)] | None = None
    muted: bool | None = None


class CanvasState(Strict):
    backgroundColor: HexColour | None = None
    lastModified: float
    viewport: Viewport | None = None
    elements: list[Element]

    @model_validator(mode="after")
    def _ids_are_unique(self) -> CanvasState:
        seen: set[str] = set()
        for index, element in enumerate(self.elements):
            if element.id in seen:
                raise ValueError(f"elements[{index}].id {element.id!r} is used by an earlier element")
            seen.add(element.id)
        return self

    def counts(self) -> tuple[int, int]:
        """How many image and video elements the canvas holds."""
        images = sum(1 for element in self.elements if element.type == "image")
        videos = sum(1 for element in self.elements if element.type == "video")
        return images, videos

    def asset_ids(self) -> list[str]:
        """Every distinct asset id the elements reference, in first-seen order."""
        return list(dict.fromkeys(e.assetId for e in self.elements if e.assetId is not None))


def parse_canvas_state(raw: bytes, max_elements: int) -> CanvasState:
    """Validate a request body as a canvasState; ValidationFailed (422) lists what is wrong."""
    try:
        state = CanvasState.model_validate_json(raw)
    except ValidationError as error:
        errors = schema_errors(error)
        raise ValidationFailed(
            "The canvas state does not match the schema.",
            errors=errors[:MAX_REPORTED_ERRORS],
            errorCount=len(errors),
        ) from None
    check_numbers_fit_jsonb(raw)
    if len(state.elements) > max_elements:
        raise ValidationFailed(f"A project holds at most {max_elements} elements; got {len(state.elements)}.")
    return state


class _Unstorable(Exception):
    pass


def _numeric_fits(token: str) -> float:
    """0.0 when PostgreSQL's numeric can hold the JSON number `token` as written; _Unstorable otherwise."""
    mantissa, _, exponent_text = token.lower().lstrip("-").partition("e")
    # Compared as text first: int() refuses strings of over 4300 digits.
    if len(exponent_text.lstrip("+-").lstrip("0")) > len(str(NUMERIC_MAX_EXPONENT)):
        raise _Unstorable(token)
    exponent = int(exponent_text) if exponent_text else 0
    integer, _, fraction = mantissa.partition(".")
    significant = integer.lstrip("0")
    if (
        abs(exponent) >= NUMERIC_MAX_EXPONENT
        or len(fraction) - exponent > NUMERIC_MAX_SCALE
        or (significant and len(significant) + exponent > NUMERIC_MAX_INTEGER_DIGITS)
    ):
        raise _Unstorable(token)
    return 0.0


def check_numbers_fit_jsonb(raw: bytes) -> None:
    """ValidationFailed (422) when a number in the body, as written, would overflow PostgreSQL's numeric."""
    # The body already passed the schema, so it is JSON of bounded depth; the stdlib parser hands the hooks
    # each number's text, which is what the database will parse.
    try:
        json.loads(raw, parse_float=_numeric_fits, parse_int=_numeric_fits)
    except _Unstorable as unstorable:
        shown = str(unstorable)
        shown = shown if len(shown) <= 40 else f"{shown[:20]}…{shown[-12:]} ({len(shown)} characters)"
        raise ValidationFailed(
            f"The number {shown} cannot be stored: numbers may have at most {NUMERIC_MAX_SCALE} digits "
            f"after the decimal point and {NUMERIC_MAX_INTEGER_DIGITS} before it.",
            errors=[{"loc": [], "msg": "number out of storable range", "type": "number_out_of_range"}],
            errorCount=1,
        ) from None


def schema_errors(error: ValidationError) -> list[dict[str, Any]]:
    """A validation failure's problems as JSON: where, what and its pydantic type."""
    items = error.errors(include_url=False, include_context=False, include_input=False)
    return [{"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]} for item in items]
