"""Bring decoded pixels to 8-bit sRGB (RGB or RGBA) whatever mode and profile they came in."""

import io
import struct
from functools import lru_cache
from typing import cast

from PIL import Image, ImageCms

_SRGB = ImageCms.createProfile("sRGB")
_SRGB_BYTES = ImageCms.ImageCmsProfile(_SRGB).tobytes()
# nclx colour_primaries codes (ITU-T H.273) that mean sRGB's own primaries, or nothing stated.
_SRGB_PRIMARIES = (1, 2)
_D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
_WITH_ALPHA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "LA", "La": "LA", "PA": "RGBA"}
_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
_UNPREMULTIPLIED = {"RGBa": "RGBA", "La": "LA"}
# Pixels converted at a time when an image is reduced in strips: a few MB of temporaries whatever the mode.
_STRIP_PIXELS = 1 << 20
# Resize's horizontal pass holds every source row at the output's width (4 bytes a pixel): up to this much
# it is made whole, past it a band at a time. A 12 or 24 MP photo's preview (9.6 and 12.8 MB) is resized
# whole, ~5 ms cheaper than in bands; a 100 MP JPEG's (16 MB from its 1/4-scale decode) stays banded.
_UNBANDED_BYTES = 14 * 1024 * 1024
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
    resized = _resized_in_strips(small, size, resample, box)
    return resized.convert(_UNPREMULTIPLIED[resized.mode]) if resized.mode in _UNPREMULTIPLIED else resized


Box = tuple[float, float, float, float]


def _resized_in_strips(
    img: Image.Image, size: tuple[int, int], resample: Image.Resampling, box: Box
) -> Image.Image:
    """img.resize(size, resample, box=box), made a band of output rows at a time.

    Resize's horizontal pass would otherwise hold every source row at the output's width beside the
    source and the output (16 MB for a 100 MP JPEG's 1/4-scale decode going to 1600 px). A band's box
    keeps the whole resize's scale and sample centres, and the filter still reads rows beyond the band.
    """
    width, height = size
    rows = max(1, _STRIP_PIXELS // width)
    if rows >= height or width * img.height * 4 <= _UNBANDED_BYTES:
        return img.resize(size, resample, box=box)
    left, top, right, bottom = box
    scale = (bottom - top) / height
    out = Image.new(img.mode, size)
    for first in range(0, height, rows):
        last = min(height, first + rows)
        band = (left, top + first * scale, right, top + last * scale)
        out.paste(img.resize((width, last - first), resample, box=band), (0, first))
    return out


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
    # A one-band image has one (min, max) pair, which Pillow's return type does not tell apart.
    try:
        low, high = cast(tuple[float, float], img.getextrema())
    except ValueError:  # big-endian and other raw 16-bit layouts: measured a strip at a time
        rows = max(1, _STRIP_PIXELS // img.width)
        parts = [
            cast(
                tuple[int, int],
                img.crop((0, top, img.width, min(img.height, top + rows))).convert("I").getextrema(),
            )
            for top in range(0, img.height, rows)
        ]
        low, high = min(part[0] for part in parts), max(part[1] for part in parts)
    return float(low), float(high)


def _to_eight_bit(img: Image.Image, levels: tuple[float, float] | None = None) -> Image.Image:
    # Pillow clips I;16/I/F to 0..255 on convert("L"); scale instead, assuming the range the
    # values actually use: 8-bit, 16-bit, 0..1 floats, or whatever min..max they span.
    wide = img.convert("F")
    # A one-band image has one (min, max) pair, which Pillow's return type does not tell apart.
    low, high = levels or cast(tuple[float, float], wide.getextrema())
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


def to_srgb(img: Image.Image, icc_profile: bytes | None, *, in_place: bool = False) -> Image.Image:
    """RGB or RGBA in sRGB: the embedded profile applied if it can be, CMYK converted, alpha kept.

    With `in_place`, an RGB image the caller owns is converted without a copy.
    """
    if icc_profile:
        converted = _apply_profile(img, icc_profile, in_place)
        if converted is not None:
            return converted
    if img.mode == "LA":
        return img.convert("RGBA")
    return img if img.mode in ("RGB", "RGBA") else img.convert("RGB")


def _apply_profile(img: Image.Image, icc_profile: bytes, in_place: bool = False) -> Image.Image | None:
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else None
    colour = img.convert(img.mode[:-1]) if alpha is not None else img
    transform = _transform(icc_profile, colour.mode)
    if transform is None:
        return None
    if in_place and alpha is None and colour.mode == "RGB":
        ImageCms.applyTransform(colour, transform, inPlace=True)
        return colour
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


def embedded_profile(info: dict) -> bytes | None:
    """The image's ICC profile, or one built from HEIF/AVIF `nclx` primaries when they are not sRGB's."""
    icc_profile = info.get("icc_profile")
    if icc_profile:
        return icc_profile
    nclx = info.get("nclx_profile")
    if not isinstance(nclx, dict) or nclx.get("color_primaries") in _SRGB_PRIMARIES:
        return None
    try:
        return _profile_for_primaries(nclx)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None  # primaries we cannot read: the pixels are used as they are


def _profile_for_primaries(nclx: dict) -> bytes:
    # sRGB's profile with its colorants swapped for these primaries (Bradford-adapted to the D50 PCS):
    # Display P3 and BT.2020 stills use sRGB-like transfer curves, so the tone curves are kept.
    chromaticities = [
        (float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
        for c in ("red", "green", "blue", "white")
    ]
    columns = [(x / y, 1.0, (1 - x - y) / y) for x, y in chromaticities[:3]]
    white = _xyz(chromaticities[3])
    primaries = _transpose(columns)
    scale = _apply(_inverse(primaries), white)
    to_xyz = [[primaries[row][col] * scale[col] for col in range(3)] for row in range(3)]
    source_cone, d50_cone = _apply(_BRADFORD, white), _apply(_BRADFORD, _D50)
    cone_scale = [[(d50_cone[i] / source_cone[i]) if i == j else 0.0 for j in range(3)] for i in range(3)]
    adapt = _multiply(_inverse(_BRADFORD), _multiply(cone_scale, _BRADFORD))
    colorants = _transpose(_multiply(adapt, to_xyz))
    profile = bytearray(_SRGB_BYTES)
    count = struct.unpack_from(">I", profile, 128)[0]
    for index in range(count):
        signature, offset = struct.unpack_from(">4sI", profile, 132 + 12 * index)
        if signature in (b"rXYZ", b"gXYZ", b"bXYZ"):
            xyz = colorants[(b"rXYZ", b"gXYZ", b"bXYZ").index(signature)]
            struct.pack_into(">3i", profile, offset + 8, *(round(v * 65536) for v in xyz))
    profile[84:100] = bytes(16)  # the profile ID (an MD5 of the original) no longer matches
    return bytes(profile)


def _xyz(xy: tuple[float, float]) -> list[float]:
    x, y = xy
    return [x / y, 1.0, (1 - x - y) / y]


def _transpose(m):
    return [list(row) for row in zip(*m, strict=True)]


def _apply(m, v):
    return [sum(m[row][k] * v[k] for k in range(3)) for row in range(3)]


def _multiply(a, b):
    return [[sum(a[row][k] * b[k][col] for k in range(3)) for col in range(3)] for row in range(3)]


def _inverse(m):
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    adjugate = [
        [e * i - f * h, c * h - b * i, b * f - c * e],
        [f * g - d * i, a * i - c * g, c * d - a * f],
        [d * h - e * g, b * g - a * h, a * e - b * d],
    ]
    return [[value / det for value in row] for row in adjugate]
