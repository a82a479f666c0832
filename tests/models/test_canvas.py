"""The canvasState schema: strict types, unknown keys refused, finite numbers, unique ids, a size bound."""

from __future__ import annotations

import json

import pytest

from models.canvas import MAX_REPORTED_ERRORS, parse_canvas_state
from models.errors import ValidationFailed

FULL_ELEMENT = {
    "id": "el-1", "type": "video", "transform": {"x": -10.5, "y": 20, "scale": 0.5, "rotation": 45},
    "zIndex": 3, "width": 640, "height": 360, "assetId": "3f0c5a5e-6d4b-4a43-9c3e-8c1a0f1d2b3c",
    "assetType": "video", "assetSyncedAt": 1_700_000_000_000, "originalFalUrl": "https://fal.media/x.mp4",
    "currentTime": 1.5, "duration": 10, "isPlaying": False, "volume": 0.8, "muted": True,
}  # fmt: skip


def state(*elements, **extra) -> bytes:
    return json.dumps({"lastModified": 1, "elements": list(elements), **extra}).encode()


def refused(raw: bytes, max_elements: int = 1000) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_canvas_state(raw, max_elements)
    return caught.value


def test_a_canvas_using_every_field_is_accepted():
    parsed = parse_canvas_state(
        state(FULL_ELEMENT, backgroundColor="#ffeedd", viewport={"x": 1, "y": 2, "scale": 1.25}), 1000
    )

    assert parsed.elements[0].transform.rotation == 45
    assert parsed.backgroundColor == "#ffeedd"


@pytest.mark.parametrize(
    "raw",
    [
        state(FULL_ELEMENT, unknown=1),
        state({**FULL_ELEMENT, "unknown": 1}),
        state({**FULL_ELEMENT, "transform": {**FULL_ELEMENT["transform"], "skew": 1}}),
        state(viewport={"x": 1, "y": 2, "scale": 1, "zoom": 2}),
    ],
)
def test_unknown_keys_are_refused_at_every_level(raw):
    assert refused(raw).extra["errors"][0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("field", "value"),
    [("zIndex", "3"), ("isPlaying", 1), ("width", -1), ("volume", 1.5), ("type", "sticker"),
     ("assetType", "gif"), ("id", ""), ("id", "x" * 129), ("originalFalUrl", "nul\u0000byte"),
     ("transform", None)],
)  # fmt: skip
def test_values_of_the_wrong_type_or_range_are_refused(field, value):
    refused(state({**FULL_ELEMENT, field: value}))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_must_be_finite(literal):
    refused(
        b'{"lastModified": 0, "elements": [], "viewport": {"x": %s, "y": 0, "scale": 1}}' % literal.encode()
    )


@pytest.mark.parametrize("colour", ["red", "#12", "#12345", "#1234567", "#ggg", "rgb(0,0,0)"])
def test_the_background_must_be_a_css_hex_colour(colour):
    refused(state(backgroundColor=colour))


@pytest.mark.parametrize("raw", [b"", b"[]", b"{", b'{"elements": []}', b"\xff\xfe"])
def test_a_body_that_is_not_a_canvas_object_is_refused(raw):
    refused(raw)


def test_element_ids_must_be_unique():
    error = refused(state({**FULL_ELEMENT, "id": "same"}, {**FULL_ELEMENT, "id": "same"}))

    assert "same" in error.extra["errors"][0]["msg"]


def test_the_element_count_is_bounded_by_the_setting():
    elements = [{**FULL_ELEMENT, "id": f"e{n}"} for n in range(4)]

    assert len(parse_canvas_state(state(*elements), 4).elements) == 4
    assert "at most 3" in refused(state(*elements), 3).detail


def test_only_the_first_errors_are_listed_but_all_are_counted():
    broken = [{**FULL_ELEMENT, "id": f"e{n}", "zIndex": "x"} for n in range(50)]

    error = refused(state(*broken))

    assert len(error.extra["errors"]) == MAX_REPORTED_ERRORS
    assert error.extra["errorCount"] == 50


def test_counts_and_asset_ids_come_from_the_elements():
    image = {**FULL_ELEMENT, "id": "i", "type": "image", "assetType": "image"}
    text = {"id": "t", "type": "text", "transform": FULL_ELEMENT["transform"], "zIndex": 0}
    parsed = parse_canvas_state(state(FULL_ELEMENT, image, text), 1000)

    assert parsed.counts() == (1, 1)
    assert parsed.asset_ids() == [FULL_ELEMENT["assetId"]]


@pytest.mark.parametrize("literal", ["1e-20000", "0." + "0" * 17000 + "1", "-0.0e-16383", "0e-2147483648"])
def test_numbers_postgresql_numeric_cannot_hold_are_refused(literal):
    error = refused(b'{"lastModified": %s, "elements": []}' % literal.encode())

    assert error.extra["errors"][0]["type"] == "number_out_of_range"
    assert len(error.detail) < 300
