"""Bring decoded pixels to 8-bit sRGB (RGB or RGBA) whatever mode and profile they came in."""

import io
from functools import lru_cache

from PIL import Image, ImageCms

_SRGB = ImageCms.createProfile("sRGB")
_WITH_ALPHA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "LA", "La": "LA", "PA": "RGBA"}
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
_UNPREMULTIPLIED = {"RGBa": "RGBA", "La": "LA"}
# Pixels converted at a time when an image is reduced in strips: a few MB of temporaries whatever the mode.
_STRIP_PIXELS = 1 << 20
# Modes Image.reduce works on in place, allocating only its output.
_REDUCED_AS_IS = ("RGB", "L", "CMYK")


def resizable(img: Image.Image, levels: tuple[float, float] | None = None) -> Image.Image:
    """A mode Pillow resamples properly: palette, bilevel and 16/32-bit images become 8-bit.

    `levels` is the (low, high) of a whole wide image when `img` is a strip of it, so every strip is
    scaled alike.
    """
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in _WITH_ALPHA:
        return img.convert(_WITH_ALPHA[mode])
    if mode == "1":
        return img.convert("L")
    if _is_wide(mode):
        return _to_eight_bit(img, levels)
    return img.convert("RGB")  # YCbCr, LAB, HSV, RGBX


def reduced_and_resized(
    img: Image.Image, factors: tuple[int, int], size: tuple[int, int], resample: Image.Resampling
) -> Image.Image:
    """resizable(img) box-reduced by whole `factors`, a strip at a time, then resampled to `size`.

    What Image.resize(reducing_gap=...) does, without its full-size converted copy (16-bit to float and
    back, RGBA to premultiplied RGBa): 4-10 bytes a pixel on top of the decode, for 100 MP. Strips whose
    height is a multiple of the vertical factor give the same blocks as reducing the whole image.
    """
    factor_x, factor_y = factors
    if img.mode not in _REDUCED_AS_IS:
        small = _reduced_in_strips(img, factors)
    else:
        small = img.reduce(factors) if factors != (1, 1) else img
    # The box keeps partial edge blocks at their true width, as resize's own reduce does.
    box = (0, 0, img.width / factor_x, img.height / factor_y)
    resized = small.resize(size, resample, box=box)
    return resized.convert(_UNPREMULTIPLIED[resized.mode]) if resized.mode in _UNPREMULTIPLIED else resized


def _reduced_in_strips(img: Image.Image, factors: tuple[int, int]) -> Image.Image:
    factor_x, factor_y = factors
    levels = _levels(img) if _is_wide(img.mode) else None
    rows = max(1, _STRIP_PIXELS // (img.width * factor_y)) * factor_y
    small: Image.Image | None = None
    for top in range(0, img.height, rows):
        strip = resizable(img.crop((0, top, img.width, min(img.height, top + rows))), levels)
        part = strip.convert(_PREMULTIPLIED.get(strip.mode, strip.mode)).reduce(factors)
        if small is None:
            small = Image.new(part.mode, (-(-img.width // factor_x), -(-img.height // factor_y)))
        small.paste(part, (0, top // factor_y))
    assert small is not None
    return small


def _is_wide(mode: str) -> bool:
    return mode.startswith("I") or mode == "F"


def _levels(img: Image.Image) -> tuple[float, float]:
    """The lowest and highest value of a 16/32-bit or float image."""
    try:
        low, high = img.getextrema()
    except ValueError:  # big-endian and other raw 16-bit layouts: measured a strip at a time
        rows = max(1, _STRIP_PIXELS // img.width)
        parts = [
            img.crop((0, top, img.width, min(img.height, top + rows))).convert("I").getextrema()
            for top in range(0, img.height, rows)
        ]
        low, high = min(part[0] for part in parts), max(part[1] for part in parts)
    return float(low), float(high)


def _to_eight_bit(img: Image.Image, levels: tuple[float, float] | None = None) -> Image.Image:
    # Pillow clips I;16/I/F to 0..255 on convert("L"); scale instead, assuming the range the
    # values actually use: 8-bit, 16-bit, 0..1 floats, or whatever min..max they span.
    wide = img.convert("F")
    low, high = levels or wide.getextrema()
    if low >= 0 and high <= 1.0 and img.mode == "F":
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255:
        scale, offset = 1.0, 0.0
    elif low >= 0 and high <= 65535:
        scale, offset = 255 / 65535, 0.0
    else:
        scale = 255 / (high - low) if high > low else 1.0
        offset = -low * scale
    return wide.point(lambda v: v * scale + offset).convert("L")


def to_srgb(img: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """RGB or RGBA in sRGB: the embedded profile applied if it can be, CMYK converted, alpha kept."""
    if icc_profile:
        converted = _apply_profile(img, icc_profile)
        if converted is not None:
            return converted
    if img.mode == "LA":
        return img.convert("RGBA")
    return img if img.mode in ("RGB", "RGBA") else img.convert("RGB")


def _apply_profile(img: Image.Image, icc_profile: bytes) -> Image.Image | None:
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    colour = img.convert(img.mode[:-1]) if alpha is not None else img
    transform = _transform(icc_profile, colour.mode)
    if transform is None:
        return None
    converted = ImageCms.applyTransform(colour, transform)
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


@lru_cache(maxsize=32)
def _transform(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    # Building a transform parses the profile and costs milliseconds; uploads share a few profiles.
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        return ImageCms.buildTransform(source, _SRGB, mode, "RGB", ImageCms.Intent.PERCEPTUAL)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None  # a broken or mismatched profile: the pixels are used as they are
