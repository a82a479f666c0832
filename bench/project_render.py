"""Project-thumbnail render cost: the bounded renderer against drawing every element, on the same canvases.

Canvases of 1,000 image elements (the most a project holds) showing 20 decoded 400 x 300 asset
thumbnails: "scattered" (rotated, scaled, spread over a 3,000 px board) and "stacked" (every element
rotated over the same spot, each as large as the thumbnail, the worst case for pixel work). Process CPU
time per render, best of `--rounds`.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from PIL import Image

from workers.media import canvas_render
from workers.media.canvas_render import Placed, render


def canvases(seed: int = 1) -> dict[str, list[Placed]]:
    rng = random.Random(seed)
    pictures = [Image.new("RGBA", (400, 300), (rng.randrange(256), 90, 160, 255)) for _ in range(20)]
    scattered = [Placed(x=rng.uniform(0, 3000), y=rng.uniform(0, 3000), width=400, height=300,
                        scale=rng.uniform(1, 4), rotation=rng.uniform(0, 360), image=rng.choice(pictures))
                 for _ in range(1000)]  # fmt: skip
    stacked = [Placed(x=0, y=0, width=400, height=300, scale=1, rotation=rng.uniform(0, 360),
                      image=rng.choice(pictures)) for _ in range(1000)]  # fmt: skip
    return {"scattered": scattered, "stacked": stacked}


def cpu_seconds(draw: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        draw()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    bounded = canvas_render.MAX_DRAWN_ELEMENTS
    for name, elements in canvases().items():
        ours = cpu_seconds(lambda elements=elements: render(elements, (255, 255, 255, 255)), rounds)
        canvas_render.MAX_DRAWN_ELEMENTS = len(elements)  # every element drawn, as before the bound
        try:
            every = cpu_seconds(lambda elements=elements: render(elements, (255, 255, 255, 255)), rounds)
        finally:
            canvas_render.MAX_DRAWN_ELEMENTS = bounded
        print(f"{name:<10} bounded ({bounded} drawn) {ours:6.3f} CPU-s   all 1000 drawn {every:6.3f} CPU-s"
              f"   x{every / ours:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
