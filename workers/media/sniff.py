"""What an upload is, from its magic bytes and header alone: cheap enough for the API process."""

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import BmpImagePlugin, GifImagePlugin, Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin
from PIL.ImageFile import ImageFile

from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits

# MPEG-TS is recognised by four sync bytes 188 apart, so the head must reach byte 564.
SNIFF_BYTES = 1024

# ISO-BMFF brands that are video (MP4 family). HEIF/AVIF/CR3 share the container but are not video.
_MP4_BRANDS = frozenset({
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
    b"M4V ", b"M4VP", b"mmp4", b"dash", b"msnv", b"MSNV", b"f4v ", b"XAVC",
})  # fmt: skip
# ISO-BMFF brands of still images (and image sequences, of which only the primary image is used).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
})  # fmt: skip
_QUICKTIME_BRAND = b"qt  "
# Classic QuickTime files may start with these atoms instead of `ftyp`.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
_TS_PACKET = 188
_TS_PACKETS_TO_CHECK = 4


@dataclass(frozen=True)
class SniffedType:
    kind: str  # "image" | "video"
    mime_type: str
    pil_format: str | None  # the only Pillow plugin allowed to open it
    demuxer: str | None  # the ffmpeg demuxer forced with -f


def _image(mime_type: str, pil_format: str) -> SniffedType:
    return SniffedType("image", mime_type, pil_format, None)


def _video(mime_type: str, demuxer: str) -> SniffedType:
    return SniffedType("video", mime_type, None, demuxer)


JPEG = _image("image/jpeg", "JPEG")
PNG = _image("image/png", "PNG")
GIF = _image("image/gif", "GIF")
WEBP = _image("image/webp", "WEBP")
BMP = _image("image/bmp", "BMP")
TIFF = _image("image/tiff", "TIFF")
HEIC = _image("image/heic", "HEIF")
AVIF = _image("image/avif", "AVIF")
MP4 = _video("video/mp4", "mov")
QUICKTIME = _video("video/quicktime", "mov")
WEBM = _video("video/webm", "matroska")
MPEG_PS = _video("video/mpeg", "mpeg")
MPEG_TS = _video("video/mp2t", "mpegts")
AVI = _video("video/x-msvideo", "avi")

ACCEPTED = (JPEG, PNG, GIF, WEBP, BMP, TIFF, HEIC, AVIF, MP4, QUICKTIME, WEBM, MPEG_PS, MPEG_TS, AVI)
IMAGE_FORMATS = frozenset(t.pil_format for t in ACCEPTED if t.kind == "image")
VIDEO_DEMUXERS = frozenset(t.demuxer for t in ACCEPTED if t.kind == "video")
# How an accepted type is named on the asset row; the sniffed MIME type is what intake recorded.
BY_MIME = {t.mime_type: t for t in ACCEPTED}
# Originals a browser cannot show, which get a full-size `display` copy. BMP is not among them: every
# current browser displays it. TIFF only Safari does, AVIF not older browsers, HEIC hardly any.
NEEDS_DISPLAY_COPY = frozenset({HEIC.mime_type, AVIF.mime_type, TIFF.mime_type})
# The accepted types in words, for people (the API's 415 message, the docs).
ACCEPTED_DESCRIPTION = "JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC, AVIF, MP4, MOV, WebM, MPEG, AVI"


def sniff(head: bytes) -> SniffedType | None:
    """The accepted type (docs/media.md) the leading bytes prove, or None; empty input is None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_HEADER_SIZES:
        return BMP
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if _ebml_doctype(head) == b"webm" else None
    if head.startswith(b"\x00\x00\x01\xba"):
        return MPEG_PS
    if _is_mpeg_ts(head):
        return MPEG_TS
    return _iso_bmff(head)


def _ebml_doctype(head: bytes) -> bytes | None:
    # DocType element id 0x4282, then a one-byte size (0x80 | n): enough for "webm" and "matroska".
    at = head.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(head) or not head[at + 2] & 0x80:
        return None
    size = head[at + 2] & 0x7F
    return head[at + 3 : at + 3 + size]


def _is_mpeg_ts(head: bytes) -> bool:
    needed = _TS_PACKET * (_TS_PACKETS_TO_CHECK - 1) + 1
    return len(head) >= needed and all(head[i * _TS_PACKET] == 0x47 for i in range(_TS_PACKETS_TO_CHECK))


def _iso_bmff(head: bytes) -> SniffedType | None:
    if len(head) < 12:
        return None
    box_size, box_type = struct.unpack_from(">I4s", head, 0)
    if box_type in _QUICKTIME_ATOMS and (box_size >= 8 or box_size in (0, 1)):
        return QUICKTIME
    if box_type != b"ftyp" or not 16 <= box_size <= 4096:
        return None
    major = head[8:12]
    if major == _QUICKTIME_BRAND:
        return QUICKTIME
    if major in _MP4_BRANDS:
        return MP4
    brands = {major} | {head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)}
    # AVIF files list mif1 too, so AV1 is decided first; any still-image brand makes the file an image.
    if brands & _AVIF_BRANDS:
        return AVIF
    if brands & _HEIF_BRANDS:
        return HEIC
    return MP4 if brands & _MP4_BRANDS else None


def check_dimensions(width: int, height: int, limits: MediaLimits) -> None:
    """Refuse sizes outside the limits: each side first (the user can act on it), then the pixel count."""
    if width < 1 or height < 1:
        raise MediaRejected("corrupt", f"{width}x{height} has no pixels")
    if width > limits.max_dimension or height > limits.max_dimension:
        raise MediaRejected("too-large-dimensions", f"{width}x{height} exceeds {limits.max_dimension} px")
    if width * height > limits.max_pixels:
        raise MediaRejected("too-many-pixels", f"{width}x{height} exceeds {limits.max_pixels} pixels")


# Pillow's own classes, not Image.open: Image.open applies Pillow's process-wide decompression-bomb
# limit, which would raise before we could report the declared size (the caller compares it with
# MediaLimits). These read headers only; JpegImageFile rather than the JPEG factory so that
# multi-picture JPEGs are not turned into MPO files, which seek (and bomb-check) at open.
_HEADER_READERS: dict[str, Callable[[BinaryIO], ImageFile]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "GIF": GifImagePlugin.GifImageFile,
    "BMP": BmpImagePlugin.BmpImageFile,
    "TIFF": TiffImagePlugin.TiffImageFile,
}
# Phones write kilobytes of `meta` (items, their locations and properties); EXIF and pixels are in `mdat`.
_HEIF_META_BYTES = 4 * 1024 * 1024
_HEADER_ERRORS = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError, RuntimeError,
)  # fmt: skip


def image_header_size(fp: BinaryIO, sniffed: SniffedType) -> tuple[int, int]:
    """Width and height as the header declares them (before EXIF orientation), decoding no pixels.

    HEIF reports its primary image's size with `irot` already applied, as libheif will decode it.
    """
    if sniffed.kind != "image" or sniffed.pil_format is None or sniffed.pil_format not in IMAGE_FORMATS:
        raise MediaRejected("unsupported-format", f"{sniffed.mime_type} is not an image we decode")
    fp.seek(0)
    head = fp.read(32)
    if not head:
        raise MediaRejected("empty")
    fp.seek(0)
    if sniffed.pil_format == "WEBP":
        # Pillow's WebP open reads the whole file and allocates the canvas: not a header read.
        return _webp_canvas_size(head)
    if sniffed.pil_format in ("HEIF", "AVIF"):
        return _heif_size(fp)
    try:
        with warnings.catch_warnings():
            # Damaged metadata is for the image task to judge (it fails the asset `corrupt`); only the
            # size is read here, and Pillow's open parses EXIF on the way.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            reader = _HEADER_READERS[sniffed.pil_format](fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # Only a GIF whose first frame outgrows its screen gets here (the warning when the caller
        # has made it an error).
        raise MediaRejected("too-many-pixels", str(error)) from error
    except _HEADER_ERRORS as error:
        raise MediaRejected("corrupt", f"unreadable {sniffed.pil_format} header: {error}") from error
    finally:
        fp.seek(0)
    return reader.size


def _heif_size(fp: BinaryIO) -> tuple[int, int]:
    # Imported here: the module is loaded by the API process, which reads HEIF headers only when sent one.
    import pillow_heif

    try:
        # libheif parses the `meta` box alone (the image data is not needed to know the size); a grid's
        # size is what its `ispe` claims, however few tiles it holds. Reported with `irot` applied.
        return pillow_heif.open_heif(io.BytesIO(_ftyp_and_meta(fp)), convert_hdr_to_8bit=True).size
    except _HEADER_ERRORS as error:
        raise MediaRejected("corrupt", f"unreadable HEIF header: {error}") from error
    finally:
        fp.seek(0)


def _ftyp_and_meta(fp: BinaryIO) -> bytes:
    """The `ftyp` and `meta` boxes of an ISO-BMFF file, skipping `mdat` and the rest without reading them."""
    # Both HEIC and AVIF readers (libheif, libavif) read the whole file; the API should not hold a
    # 25 MiB upload in memory to learn a size from a few kilobytes of boxes.
    kept = b""
    fp.seek(0)
    while len(kept) <= _HEIF_META_BYTES:
        header = fp.read(8)
        if len(header) < 8:
            break
        size, kind = struct.unpack(">I4s", header)
        if size == 1:
            header += fp.read(8)
            size = struct.unpack_from(">Q", header, 8)[0] if len(header) == 16 else 0
        if kind in (b"ftyp", b"meta"):
            if not len(header) <= size <= _HEIF_META_BYTES:
                raise ValueError(f"{kind.decode()} box of {size} bytes")
            kept += header + fp.read(size - len(header))
            if kind == b"meta":
                return kept
        elif size < len(header):  # 0: the box runs to the end of the file, and no `meta` came first
            break
        else:
            fp.seek(size - len(header), 1)
    raise ValueError("no meta box")


def _webp_canvas_size(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    try:
        if chunk == b"VP8X":
            width, height = int.from_bytes(head[24:27], "little"), int.from_bytes(head[27:30], "little")
            return width + 1, height + 1
        if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
            width, height = struct.unpack_from("<HH", head, 26)
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L" and head[20] == 0x2F:
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    except (struct.error, IndexError):
        pass
    raise MediaRejected("corrupt", "unreadable WebP header")
