"""ThumbHash placeholders (https://evanw.github.io/thumbhash/), encoded with numpy."""

import base64
import math

import numpy as np
from PIL import Image

_SIDE = 100  # the reference encoder's input bound; more pixels change nothing


def thumbhash(img: Image.Image) -> str:
    """Base64 ThumbHash of an RGB or RGBA image (24-25 bytes, 32-36 characters)."""
    small = img.convert("RGBA")
    if max(small.size) > _SIDE:
        small.thumbnail((_SIDE, _SIDE), Image.Resampling.BOX)
    return base64.b64encode(bytes(rgba_to_thumbhash(np.asarray(small)))).decode("ascii")


def _round(value: float) -> int:
    return math.floor(value + 0.5)  # JavaScript's Math.round, as in the reference


def rgba_to_thumbhash(rgba: np.ndarray) -> list[int]:
    """The reference rgbaToThumbHash on an (h, w, 4) uint8 array."""
    h, w = rgba.shape[:2]
    pixels = rgba.reshape(-1, 4).astype(np.float64) / 255
    alpha = pixels[:, 3]
    avg_a = alpha.sum()
    avg = (pixels[:, :3] * alpha[:, None]).sum(axis=0) / avg_a if avg_a else np.zeros(3)
    has_alpha = avg_a < w * h
    l_limit = 5 if has_alpha else 7
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    rgb = avg * (1 - alpha[:, None]) + pixels[:, :3] * alpha[:, None]
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    channels = {
        "l": ((r + g + b) / 3).reshape(h, w),
        "p": ((r + g) / 2 - b).reshape(h, w),
        "q": (r - g).reshape(h, w),
        "a": alpha.reshape(h, w),
    }

    def encode(channel: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
        xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
        dc, ac = 0.0, []
        for cy in range(ny):
            fy = np.cos(math.pi / h * cy * ys)
            cx = 0
            while cx * ny < nx * (ny - cy):
                fx = np.cos(math.pi / w * cx * xs)
                f = float(fy @ channel @ fx) / (w * h)
                if cx or cy:
                    ac.append(f)
                else:
                    dc = f
                cx += 1
        scale = max((abs(f) for f in ac), default=0.0)
        if scale:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return dc, ac, scale

    l_dc, l_ac, l_scale = encode(channels["l"], max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = encode(channels["p"], 3, 3)
    q_dc, q_ac, q_scale = encode(channels["q"], 3, 3)
    is_landscape = w > h
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (ly if is_landscape else lx) | (_round(63 * p_scale) << 3) | (_round(63 * q_scale) << 9)
    header16 |= int(is_landscape) << 15
    result = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    acs = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = encode(channels["a"], 5, 5)
        result.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        acs.append(a_ac)
    nibbles = [_round(15 * f) for ac in acs for f in ac]
    nibbles += [0] * (len(nibbles) % 2)
    result += [low | (high << 4) for low, high in zip(nibbles[::2], nibbles[1::2], strict=True)]
    return result
