"""Render a canvas's image and video elements into one small WebP (pure: images in, bytes out).

Transforms follow Konva, which the canvas frontend uses: (x, y) is the element's top-left corner,
the element is scaled by `scale` and rotated by `rotation` degrees clockwise about that corner.
The content's bounding box is fitted so its longest side is `size` pixels.

Cost bound: whatever the canvas holds, a render draws at most MAX_DRAWN_ELEMENTS elements (the largest
at thumbnail scale, the topmost among equals; one covering less than a pixel is skipped), and each drawn
element goes through two buffers of at most (size + 4)² pixels (resized, then turned), so the pixel work
is at most MAX_DRAWN_ELEMENTS * 2 * (size + 4)² plus one canvas of size x size; every other element costs
only the arithmetic on its corners.
"""

from __future__ import annotations

import heapq
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageColor

PLACEHOLDER_RGBA = (200, 200, 200, 255)
EMPTY_CANVAS_ASPECT = 3 / 4
WEBP_QUALITY = 80
# The schema only promises each number is finite, not their products or differences: an element whose
# corners land beyond this (or overflow to infinity) is left out rather than failing the whole render.
MAX_COORDINATE = 1e15
# Nor that an element has a visible size: one narrower than this (5e-324, say) would make the fit factor
# infinite if it were alone, and one whose far side rounds onto its near one spans nothing at all.
MIN_EXTENT = 1e-6
# A 400 px thumbnail shows little of a hundred layers; drawing all 1,000 rotated elements a canvas may
# hold took seconds of CPU per save. An element covering less than a pixel at that scale is invisible.
MAX_DRAWN_ELEMENTS = 100
MIN_DRAWN_AREA = 1.0


@dataclass(frozen=True)
class Placed:
    """One element to draw: where, how big, and its picture (None draws a neutral placeholder)."""

    x: float
    y: float
    width: float
    height: float
    scale: float
    rotation: float
    image: Image.Image | None


def parse_colour(colour: str | None) -> tuple[int, int, int, int]:
    """A CSS hex colour (#rgb, #rgba, #rrggbb, #rrggbbaa) as RGBA; white when absent."""
    if not colour:
        return (255, 255, 255, 255)
    rgba = ImageColor.getcolor(colour, "RGBA")
    return rgba if isinstance(rgba, tuple) and len(rgba) == 4 else (255, 255, 255, 255)


def corners(element: Placed) -> list[tuple[float, float]]:
    """The element's four corners on the canvas after scale and rotation about its top-left."""
    angle = math.radians(element.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    width, height = element.width * element.scale, element.height * element.scale
    return [
        (element.x + u * cos - v * sin, element.y + u * sin + v * cos)
        for u, v in ((0, 0), (width, 0), (width, height), (0, height))
    ]


@dataclass(frozen=True)
class Plan:
    """What a render will draw: the canvas size, the fit, and the elements kept (in z-order)."""

    width: int
    height: int
    left: float
    top: float
    factor: float
    drawn: tuple[Placed, ...]

    def pixel_work(self) -> int:
        """Pixels of every buffer the drawing makes (the resized and turned pictures), the canvas aside."""
        return sum(_buffer_pixels(element, self.factor) for element in self.drawn)


def plan(elements: Sequence[Placed], size: int = 400) -> Plan | None:
    """The canvas for the drawable elements' bounding box and the at most MAX_DRAWN_ELEMENTS to draw."""
    visible = [element for element in elements if _drawable(element)]
    if not visible:
        return None
    points = [point for element in visible for point in corners(element)]
    left, top = min(x for x, _ in points), min(y for _, y in points)
    span_x, span_y = max(x for x, _ in points) - left, max(y for _, y in points) - top
    factor = size / max(span_x, span_y)
    areas = [(_area(element) * factor * factor, index) for index, element in enumerate(visible)]
    kept = heapq.nlargest(MAX_DRAWN_ELEMENTS, (entry for entry in areas if entry[0] >= MIN_DRAWN_AREA))
    drawn = tuple(visible[index] for _, index in sorted(kept, key=lambda entry: entry[1]))
    width, height = max(1, round(span_x * factor)), max(1, round(span_y * factor))
    return Plan(width, height, left, top, factor, drawn)


def render(elements: Sequence[Placed], background: tuple[int, int, int, int], size: int = 400) -> bytes:
    """WebP bytes of the elements (first drawn first) on `background`, longest side `size` px."""
    layout = plan(elements, size)
    if layout is None:
        return _encode(Image.new("RGBA", (size, round(size * EMPTY_CANVAS_ASPECT)), background))
    canvas = Image.new("RGBA", (layout.width, layout.height), background)
    for element in layout.drawn:
        _draw(canvas, element, layout.left, layout.top, layout.factor)
    return _encode(canvas)


def _area(element: Placed) -> float:
    return element.width * element.height * element.scale * element.scale


def _resized_size(element: Placed, factor: float) -> tuple[int, int]:
    width = max(1, round(element.width * abs(element.scale) * factor))
    height = max(1, round(element.height * abs(element.scale) * factor))
    return width, height


def _buffer_pixels(element: Placed, factor: float) -> int:
    """Pixels of the resized picture plus, when turned, of rotate(expand=True)'s bounding box of it."""
    width, height = _resized_size(element, factor)
    if not element.rotation % 360:
        return width * height
    angle = math.radians(element.rotation)
    cos, sin = abs(math.cos(angle)), abs(math.sin(angle))
    turned = math.ceil(width * cos + height * sin + 1) * math.ceil(width * sin + height * cos + 1)
    return width * height + turned


def _drawable(element: Placed) -> bool:
    width, height = element.width * abs(element.scale), element.height * abs(element.scale)
    if not (width >= MIN_EXTENT and height >= MIN_EXTENT):
        return False
    box = corners(element)
    if not all(abs(value) <= MAX_COORDINATE for corner in box for value in corner):
        return False
    # Measured on the corners as computed: far from the origin a small side can round away entirely.
    xs, ys = [x for x, _ in box], [y for _, y in box]
    return max(xs) - min(xs) >= MIN_EXTENT and max(ys) - min(ys) >= MIN_EXTENT


def _draw(canvas: Image.Image, element: Placed, left: float, top: float, factor: float) -> None:
    width, height = _resized_size(element, factor)
    if element.image is None:
        picture = Image.new("RGBA", (width, height), PLACEHOLDER_RGBA)
    else:
        source = element.image if element.image.mode == "RGBA" else element.image.convert("RGBA")
        picture = source.resize((width, height), Image.Resampling.BICUBIC)
    if element.scale < 0:  # a negative uniform scale mirrors both axes: a half turn
        picture = picture.transpose(Image.Transpose.ROTATE_180)
    if element.rotation % 360:
        # PIL turns counter-clockwise; the canvas turns clockwise (y points down).
        picture = picture.rotate(-element.rotation, resample=Image.Resampling.BICUBIC, expand=True)
    # The element's centre is where its top-left corner's transform puts the middle of the box.
    box = corners(element)
    centre_x = ((box[0][0] + box[2][0]) / 2 - left) * factor
    centre_y = ((box[0][1] + box[2][1]) / 2 - top) * factor
    _composite(canvas, picture, round(centre_x - picture.width / 2), round(centre_y - picture.height / 2))


def _composite(canvas: Image.Image, picture: Image.Image, x: int, y: int) -> None:
    """Alpha-composite `picture` at (x, y), clipped to the canvas (alpha_composite refuses negatives)."""
    crop_left, crop_top = max(0, -x), max(0, -y)
    crop_right = min(picture.width, canvas.width - x)
    crop_bottom = min(picture.height, canvas.height - y)
    if crop_right <= crop_left or crop_bottom <= crop_top:
        return
    part = picture.crop((crop_left, crop_top, crop_right, crop_bottom))
    canvas.alpha_composite(part, dest=(x + crop_left, y + crop_top))


def _encode(canvas: Image.Image) -> bytes:
    # An RGBA canvas has one (min, max) pair per band; the fourth is alpha.
    opaque = cast(tuple[tuple[int, int], ...], canvas.getextrema())[3][0] == 255
    output = io.BytesIO()
    (canvas.convert("RGB") if opaque else canvas).save(output, "WEBP", quality=WEBP_QUALITY, method=4)
    return output.getvalue()
