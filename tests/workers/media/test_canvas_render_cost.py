"""The render's cost bound: at most MAX_DRAWN_ELEMENTS drawn, none under a pixel, buffers in the canvas."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from workers.media.canvas_render import MAX_DRAWN_ELEMENTS, Placed, parse_colour, plan, render

SIZE = 400
RED, GREEN = (255, 0, 0), (0, 255, 0)


def element(x=0.0, y=0.0, width=100.0, height=100.0, scale=1.0, rotation=0.0, image=None) -> Placed:
    return Placed(x=x, y=y, width=width, height=height, scale=scale, rotation=rotation, image=image)


def bound() -> int:
    return MAX_DRAWN_ELEMENTS * 2 * (SIZE + 4) ** 2


def test_of_a_thousand_rotated_elements_only_the_hundred_largest_are_drawn_in_z_order():
    rng = random.Random(7)
    small = [element(rng.uniform(0, 3000), rng.uniform(0, 3000), 30, 20, rotation=rng.uniform(0, 360))
             for _ in range(900)]  # fmt: skip
    large = [element(rng.uniform(0, 3000), rng.uniform(0, 3000), 300, 200, rotation=rng.uniform(0, 360))
             for _ in range(100)]  # fmt: skip
    elements = small[:450] + large[:50] + small[450:] + large[50:]

    layout = plan(elements, SIZE)

    assert len(layout.drawn) == MAX_DRAWN_ELEMENTS
    assert set(map(id, layout.drawn)) == set(map(id, large))
    assert [id(e) for e in layout.drawn] == [id(e) for e in elements if e in large]  # still z-order


def test_among_equally_large_elements_the_topmost_are_drawn():
    elements = [element(x=10 * n, rotation=n) for n in range(MAX_DRAWN_ELEMENTS + 50)]

    layout = plan(elements, SIZE)

    assert list(layout.drawn) == elements[50:]


def test_an_element_covering_less_than_a_pixel_at_thumbnail_scale_is_not_drawn():
    background = element(width=4000, height=4000, image=Image.new("RGB", (100, 100), RED))
    # 5 x 5 of 4,000 is a quarter of a pixel wide at 400 px; drawn, it would take a whole pixel.
    speck = element(x=2000, y=2000, width=5, height=5, image=Image.new("RGB", (5, 5), GREEN))

    layout = plan([background, speck], SIZE)
    picture = Image.open(io.BytesIO(render([background, speck], parse_colour(None)))).convert("RGB")

    assert layout.drawn == (background,)
    assert picture.size == (SIZE, SIZE)  # it still counts for the framing
    assert picture.getpixel((200, 200))[0] > 200 and picture.getpixel((200, 200))[1] < 60


@pytest.mark.parametrize("seed", range(5))
def test_the_pixel_work_of_a_heavy_canvas_stays_within_the_stated_bound(seed):
    rng = random.Random(seed)
    elements = [
        element(
            x=rng.choice([0.0, rng.uniform(-500, 500)]),
            y=rng.choice([0.0, rng.uniform(-500, 500)]),
            width=rng.choice([1.0, 400.0, 1000.0, rng.uniform(1, 2000)]),
            height=rng.choice([1.0, 300.0, 1000.0, rng.uniform(1, 2000)]),
            scale=rng.choice([1.0, -1.0, rng.uniform(0.01, 5)]),
            rotation=rng.choice([0.0, 45.0, 90.0, rng.uniform(-720, 720)]),
        )
        for _ in range(1000)
    ]

    layout = plan(elements, SIZE)

    assert len(layout.drawn) == MAX_DRAWN_ELEMENTS
    assert max(layout.width, layout.height) == SIZE
    assert layout.pixel_work() <= bound()


@pytest.mark.parametrize(
    ("width", "height", "rotation"), [(400, 400, 45), (1, 565, 45), (400, 3, 30), (7, 400, 359)]
)
def test_the_counted_work_covers_the_buffers_pillow_really_makes(width, height, rotation):
    one = element(width=width, height=height, rotation=rotation)
    layout = plan([one], SIZE)
    resized = Image.new("RGBA", (round(width * layout.factor) or 1, round(height * layout.factor) or 1))
    turned = resized.rotate(-rotation, expand=True)

    assert resized.width * resized.height + turned.width * turned.height <= layout.pixel_work()
    assert layout.pixel_work() <= 2 * (SIZE + 4) ** 2
