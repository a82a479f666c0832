"""Bring decoded pixels to 8-bit sRGB (RGB or RGBA) whatever mode and profile they came in."""

import io
from functools import lru_cache
from typing import cast

from PIL import Image, ImageCms

_SRGB = ImageCms.createProfile("sRGB")
_WITH_ALPHA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "LA", "La": "LA", "PA": "RGBA"}


def resizable(img: Image.Image) -> Image.Image:
    """A mode Pillow resamples properly: palette, bilevel and 16/32-bit images become 8-bit."""
    mode = img.mode
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        return img
    if mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if mode in _WITH_ALPHA:
        return img.convert(_WITH_ALPHA[mode])
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _to_eight_bit(img)
    return img.convert("RGB")  # YCbCr, LAB, HSV, RGBX


def _to_eight_bit(img: Image.Image) -> Image.Image:
    # Pillow clips I;16/I/F to 0..255 on convert("L"); scale instead, assuming the range the
    # values actually use: 8-bit, 16-bit, 0..1 floats, or whatever min..max they span.
    wide = img.convert("F")
    # A one-band image has one (min, max) pair, which Pillow's return type does not tell apart.
    low, high = cast(tuple[float, float], wide.getextrema())
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
    if alpha is not None and converted is not None:
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
