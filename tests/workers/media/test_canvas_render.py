"""Canvas rendering: placement, z-order, scale, clockwise rotation about the top-left, fit to 400 px."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from workers.media.canvas_render import PLACEHOLDER_RGBA, Placed, parse_colour, render

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def solid(colour, size=(100, 100), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def halves(width=100, height=50) -> Image.Image:
    """Left half red, right half green: shows which way a picture was turned."""
    picture = Image.new("RGB", (width, height), RED)
    picture.paste(GREEN, (width // 2, 0, width, height))
    return picture


def place(picture, x=0.0, y=0.0, scale=1.0, rotation=0.0, size=None) -> Placed:
    width, height = size or picture.size
    return Placed(x=x, y=y, width=width, height=height, scale=scale, rotation=rotation, image=picture)


def decoded(webp: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(webp))
    assert picture.format == "WEBP"
    return picture.convert("RGB")


def assert_colour(picture: Image.Image, point: tuple[int, int], expected: tuple[int, int, int]) -> None:
    # Lossy WebP shifts colours a little; a wrong element or the background is far off.
    actual = picture.getpixel(point)
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= 40, (point, actual, expected)


def test_later_elements_cover_earlier_ones_and_the_content_box_fills_400_px():
    webp = render([place(solid(RED)), place(solid(GREEN), x=50, y=50)], parse_colour("#0000ff"))

    picture = decoded(webp)
    assert picture.size == (400, 400)  # the 150 x 150 box scaled by 8/3
    assert_colour(picture, (67, 67), RED)
    assert_colour(picture, (333, 333), GREEN)
    assert_colour(picture, (200, 200), GREEN)  # the overlap: array order is z-order
    assert_colour(picture, (333, 67), BLUE)  # uncovered: the background colour


def test_rotation_is_clockwise_about_the_top_left_corner():
    webp = render([place(halves(), rotation=90)], parse_colour(None))

    picture = decoded(webp)
    assert picture.size == (200, 400)  # the box now spans x -50..0, y 0..100
    assert_colour(picture, (100, 100), RED)  # the left half now hangs from the corner
    assert_colour(picture, (100, 300), GREEN)


def test_scale_grows_the_element_from_its_top_left():
    webp = render([place(solid(RED), scale=2, size=(50, 50)), place(solid(GREEN), x=100)], parse_colour(None))

    picture = decoded(webp)
    assert picture.size == (400, 200)
    assert_colour(picture, (190, 100), RED)
    assert_colour(picture, (210, 100), GREEN)


def test_a_missing_picture_draws_a_neutral_placeholder_of_the_element_size():
    missing = Placed(x=0, y=0, width=100, height=100, scale=1, rotation=0, image=None)

    picture = decoded(render([missing, place(solid(RED), x=100)], parse_colour(None)))

    assert_colour(picture, (100, 100), PLACEHOLDER_RGBA[:3])
    assert_colour(picture, (300, 100), RED)


def test_transparent_parts_show_the_background():
    see_through = place(solid((0, 0, 0, 0), mode="RGBA"))

    picture = decoded(render([see_through, place(solid(RED), x=100)], parse_colour("#00f")))

    assert_colour(picture, (100, 100), BLUE)


def test_an_empty_canvas_is_a_background_tile_400_px_wide():
    picture = decoded(render([], parse_colour("#00ff00")))

    assert picture.size == (400, 300)
    assert_colour(picture, (200, 150), GREEN)


def test_a_small_canvas_is_still_fitted_to_400_px_on_its_longest_side():
    picture = decoded(render([place(solid(RED), size=(10, 40))], parse_colour(None)))

    assert picture.size == (100, 400)


@pytest.mark.parametrize(
    "far",
    [
        Placed(x=0, y=0, width=1e308, height=100, scale=10, rotation=0, image=None),  # overflows to inf
        Placed(x=1.7e308, y=0, width=100, height=100, scale=1, rotation=0, image=None),  # span overflows
        Placed(x=-1.7e308, y=0, width=100, height=100, scale=1, rotation=0, image=None),
    ],
)
def test_elements_whose_corners_overflow_are_left_out_instead_of_failing_the_render(far):
    picture = decoded(render([place(solid(RED)), far, place(solid(GREEN), x=100)], parse_colour(None)))

    assert picture.size == (400, 200)
    assert_colour(picture, (100, 100), RED)
    assert_colour(picture, (300, 100), GREEN)


DEGENERATE = [
    Placed(x=0, y=0, width=5e-324, height=5e-324, scale=1, rotation=0, image=None),  # 400 / 5e-324 is inf
    Placed(x=0, y=0, width=100, height=100, scale=5e-324, rotation=30, image=None),
    Placed(x=1e14, y=1e14, width=1e-3, height=1e-3, scale=1, rotation=0, image=None),  # rounds to no span
]


@pytest.mark.parametrize("degenerate", DEGENERATE)
def test_an_element_too_small_to_see_alone_renders_an_empty_canvas_instead_of_failing(degenerate):
    picture = decoded(render([degenerate], parse_colour("#0000ff")))

    assert picture.size == (400, 300)
    assert_colour(picture, (200, 150), BLUE)


@pytest.mark.parametrize("degenerate", DEGENERATE)
def test_elements_too_small_to_see_are_left_out_and_the_rest_still_fills_400_px(degenerate):
    picture = decoded(render([place(solid(RED)), degenerate, place(solid(GREEN), x=100)], parse_colour(None)))

    assert picture.size == (400, 200)
    assert_colour(picture, (100, 100), RED)
    assert_colour(picture, (300, 100), GREEN)


@pytest.mark.parametrize(
    ("colour", "rgba"),
    [
        ("#abc", (170, 187, 204, 255)),
        ("#112233", (17, 34, 51, 255)),
        ("#11223344", (17, 34, 51, 68)),
        (None, (*WHITE, 255)),
    ],
)
def test_background_colours_are_css_hex(colour, rgba):
    assert parse_colour(colour) == rgba
