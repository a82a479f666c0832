"""Image renditions: one decode, a 1600 px preview, a 400 px thumbnail, a placeholder, a display copy."""

import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from workers.media.codecs import prepare_heif_and_avif
from workers.media.color import embedded_profile, reduced_and_resized, resizable, to_srgb
from workers.media.errors import MediaRejected
from workers.media.frames import count_frames
from workers.media.limits import MediaLimits
from workers.media.placeholder import thumbhash
from workers.media.sniff import NEEDS_DISPLAY_COPY, SniffedType, check_dimensions, image_header_size
from workers.media.webp import MAX_SIDE as WEBP_MAX_SIDE
from workers.media.webp import encode_jpeg, encode_webp

THUMBNAIL_SIDE = 400
PREVIEW_SIDE = 1600
# reduce() by whole factors while at least this much resampling is left, then resample: box-reducing
# a 12 MP image is ~10x cheaper than Lanczos over it, and the thumbnails stay >50 dB against it.
REDUCING_GAP = 2.0
# The display copy is what the canvas shows full size, so it is kept closer to the original than
# the thumbnails (bench/RESULTS.md: ~4 MB for a 12 MP photo).
DISPLAY_QUALITY = 90
# The preview is mostly a 1/2-scale JPEG decode resampled by ~1.25, where Pillow's (antialiased)
# bilinear costs under half of Lanczos and the difference does not show; thumbnails keep Lanczos.
_PREVIEW_RESAMPLE = Image.Resampling.BILINEAR
_THUMBNAIL_RESAMPLE = Image.Resampling.LANCZOS
# The thumbnail cut from the (already antialiased) preview: a box reduce by the whole factor, 4 from
# 1600 px, then a near-identity Lanczos costs ~2 ms against ~10 ms with REDUCING_GAP, at the same PSNR
# against a Lanczos resize of the full decode and the same WebP bytes (12 MP photo-like JPEGs).
_FROM_PREVIEW_GAP = 1.0
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_270],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError)
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
# How Pillow words a directory entry it had to skip; "Metadata Warning" (an odd count) is not among them.
_EXIF_DAMAGE = ("Tag offset too large", "Tag data larger than file", "Possibly corrupt EXIF", "Corrupt EXIF")


@dataclass(frozen=True)
class ImageRenditions:
    width: int  # after EXIF orientation
    height: int
    thumbnail: bytes  # WebP, longest side 400 (never upscaled)
    preview: bytes | None  # WebP, longest side 1600, only when the original is larger
    placeholder: str  # base64 ThumbHash
    # Full size (capped at the pixel limit) for originals a browser cannot show: WebP, or JPEG past
    # WebP's 16,383 px; None for types a browser displays as they are.
    display: bytes | None = None


Source = BinaryIO | str | os.PathLike[str]


def make_image_renditions(source: Source, sniffed: SniffedType, limits: MediaLimits) -> ImageRenditions:
    """Thumbnail, optional preview, placeholder and display copy from one decode; MediaRejected if hostile.

    HEIF and AVIF: the primary image only (not a burst's other frames, a Live Photo's video, thumbnails
    or depth maps), in its `irot`/`imir` orientation, its ICC or `nclx` colour converted to sRGB, and
    10-bit pixels reduced to 8.
    """
    full = None
    with _opened(source, sniffed, limits) as im:
        orientation = _orientation(im)
        icc_profile = embedded_profile(im.info)
        width, height = im.size
        if sniffed.mime_type in NEEDS_DISPLAY_COPY:
            # The display copy is already sRGB and upright: the smaller renditions are cut from it.
            full = _display_image(im, icc_profile, orientation, limits)
        elif max(width, height) > PREVIEW_SIDE:
            preview_image = _finish(_shrunk(im, PREVIEW_SIDE, _PREVIEW_RESAMPLE), icc_profile, orientation)
        else:
            preview_image = None
            thumbnail_image = _finish(_shrunk(im, THUMBNAIL_SIDE), icc_profile, orientation)
    # The decoded original is dropped here (unless it is the display image itself) before encoding.
    del im
    display = None
    if full is not None:
        display = _encode_display(full)
        preview_image = None
        if max(full.size) > PREVIEW_SIDE:
            preview_image = _resized(full, _fit(full.size, PREVIEW_SIDE), _PREVIEW_RESAMPLE)
        else:
            thumbnail_image = _resized(full, _fit(full.size, THUMBNAIL_SIDE))
        del full
    preview = None
    if preview_image is not None:
        preview = encode_webp(preview_image)
        thumbnail_image = _resized(
            preview_image, _fit(preview_image.size, THUMBNAIL_SIDE), reducing_gap=_FROM_PREVIEW_GAP
        )
    if orientation >= 5:
        width, height = height, width
    return ImageRenditions(
        width, height, encode_webp(thumbnail_image), preview, thumbhash(thumbnail_image), display
    )


def make_thumbnail(source: Source, sniffed: SniffedType, limits: MediaLimits) -> bytes:
    """Only the 400 px WebP thumbnail: the fastest path, for callers that need nothing else."""
    with _opened(source, sniffed, limits) as im:
        orientation = _orientation(im)
        return encode_webp(_finish(_shrunk(im, THUMBNAIL_SIDE), embedded_profile(im.info), orientation))


def _lift_pillow_bomb_limit(max_pixels: int) -> None:
    # Pillow's decompression-bomb limit is one process-wide number that Image.open and some decoders
    # consult. Our own bound (MediaLimits) is checked from the header before Image.open, so Pillow's
    # only has to sit at or above it, or it would warn about (or refuse) images we accept. It is only
    # ever raised, never lowered or restored, so there is no set/restore window for another caller
    # to observe: in the prefork worker each child runs one task at a time on one thread anyway, and
    # in a threaded process a concurrent reader sees either the old, stricter value or ours.
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


@contextmanager
def _opened(source: Source, sniffed: SniffedType, limits: MediaLimits) -> Iterator[Image.Image]:
    with ExitStack() as stack, warnings.catch_warnings():
        # Pillow warns (a mere log line) between its pixel limit and twice that: refuse instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Pillow warns about damaged metadata as it opens a file; the EXIF is judged by _orientation.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        fp = stack.enter_context(open(source, "rb")) if isinstance(source, str | os.PathLike) else source
        _lift_pillow_bomb_limit(limits.max_pixels)
        if sniffed.pil_format in ("HEIF", "AVIF"):
            prepare_heif_and_avif()
        check_dimensions(*image_header_size(fp, sniffed), limits)
        assert sniffed.pil_format is not None  # image_header_size refuses a type without one
        if count_frames(fp, sniffed, stop_after=limits.max_frames) > limits.max_frames:
            raise MediaRejected("too-many-frames", f"more than {limits.max_frames} frames")
        try:
            im = stack.enter_context(Image.open(fp, formats=[sniffed.pil_format]))
        except _BOMB as error:
            raise MediaRejected("too-many-pixels", str(error)) from error
        except _DECODE_ERRORS as error:
            raise MediaRejected("corrupt", f"{sniffed.pil_format}: {error}") from error
        # A GIF's first frame may outgrow the screen its header declares.
        check_dimensions(*im.size, limits)
        yield im


def _orientation(im: Image.Image) -> int:
    """EXIF (or XMP) orientation; EXIF too damaged to tell which way up the picture goes is corrupt."""
    damage = _exif_damage(im.info.get("exif"))
    if damage:
        raise MediaRejected("corrupt", f"damaged EXIF: {damage}")
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except MemoryError:
        raise  # a PNG decodes its pixels to find a late eXIf chunk: the memory ceiling, not damage
    except Exception as error:
        raise MediaRejected("corrupt", f"unreadable EXIF: {error}") from error
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _exif_damage(raw: bytes | None) -> str | None:
    """Why an EXIF block's first directory cannot be read whole (the orientation lives there), or None."""
    if not raw:
        return None
    # Parsed afresh: Pillow's own parse at open may have already failed quietly and been cached.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            Image.Exif().load(raw)
        except Exception as error:
            return str(error) or type(error).__name__
    for warning in caught:
        message = str(warning.message)
        if issubclass(warning.category, UserWarning) and message.startswith(_EXIF_DAMAGE):
            return message
    return None


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrunk(im: Image.Image, side: int, resample: Image.Resampling = _THUMBNAIL_RESAMPLE) -> Image.Image:
    """Decoded and resampled so the longest side is `side`, in stored (unrotated) orientation."""
    target = _fit(im.size, side)
    if im.format == "JPEG":
        # DCT scaling: decode at the smallest of 1/1..1/8 that still covers `target`. draft() divides
        # each side by the box's, so the box must have the output's aspect ratio, not a square.
        im.draft(None, target)
    _load(im)
    # The whole factors Image.resize(reducing_gap=...) would reduce by, applied a strip at a time so
    # that no full-size converted copy is made.
    factors = (int(im.width / target[0] / REDUCING_GAP) or 1, int(im.height / target[1] / REDUCING_GAP) or 1)
    return reduced_and_resized(im, factors, target, resample)


def _load(im: Image.Image) -> None:
    try:
        im.load()
    except _BOMB as error:
        raise MediaRejected("too-many-pixels", str(error)) from error
    except _DECODE_ERRORS as error:
        raise MediaRejected("corrupt", f"{im.format}: {error}") from error


def _display_image(
    im: Image.Image, icc_profile: bytes | None, orientation: int, limits: MediaLimits
) -> Image.Image:
    """The whole picture as a browser shows it: sRGB, upright, at most `limits.max_pixels`."""
    _load(im)
    # The header was checked against the limit, but a HEIF grid may decode larger than its `ispe` says.
    width, height = im.size
    scale = min(1.0, (limits.max_pixels / (width * height)) ** 0.5)
    img = _resized(resizable(im), (max(1, int(width * scale)), max(1, int(height * scale))))
    # Turned first, then converted in place when that made a copy: at most one full-size copy beside
    # the decoded original (a 48 MP HEIC peaked at 532 MB this way, 712 MB converting then turning).
    for method in _TRANSPOSE.get(orientation, []):
        img = img.transpose(method)
    return to_srgb(img, icc_profile, in_place=img is not im)


def _encode_display(img: Image.Image) -> bytes:
    if max(img.size) > WEBP_MAX_SIDE:
        return encode_jpeg(img, DISPLAY_QUALITY)
    return encode_webp(img, DISPLAY_QUALITY)


def _resized(
    img: Image.Image,
    target: tuple[int, int],
    resample: Image.Resampling = _THUMBNAIL_RESAMPLE,
    reducing_gap: float = REDUCING_GAP,
) -> Image.Image:
    if img.size == target:
        return img
    return img.resize(target, resample, reducing_gap=reducing_gap)


def _finish(img: Image.Image, icc_profile: bytes | None, orientation: int) -> Image.Image:
    # Colour and orientation on the small image: a transpose before shrinking costs twice the decode.
    img = to_srgb(img, icc_profile)
    for method in _TRANSPOSE.get(orientation, []):
        img = img.transpose(method)
    return img
