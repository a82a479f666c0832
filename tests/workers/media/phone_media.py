"""Generators for what phones and image generators produce: HEIC, AVIF, HDR and rotated video.

Made here with pillow-heif, Pillow and ffmpeg; hostile variants are valid files with one field changed.
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path

import pillow_heif
from PIL import Image, ImageCms

from tests.workers.media.hostile_media import pattern

# Apple's Display P3 profile's colorants (D50-adapted XYZ, as its rXYZ/gXYZ/bXYZ tags hold them).
DISPLAY_P3_COLORANTS = {
    b"rXYZ": (0.515121, 0.241196, -0.001053),
    b"gXYZ": (0.291977, 0.692245, 0.041885),
    b"bXYZ": (0.157104, 0.066574, 0.784073),
}
# Linear Display P3 to linear sRGB (both D65), for checking conversions independently of LittleCMS.
P3_TO_SRGB = ((1.2249, -0.2247, 0.0), (-0.0420, 1.0419, 0.0), (-0.0197, -0.0786, 1.0979))


def display_p3_profile() -> bytes:
    """A Display P3 ICC profile: sRGB's transfer curves with P3's colorants, as Apple's is made."""
    pillow_heif.register_heif_opener()
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack_from(">I", profile, 128)[0]
    for index in range(count):
        signature, offset = struct.unpack_from(">4sI", profile, 132 + 12 * index)
        if signature in DISPLAY_P3_COLORANTS:
            values = (round(v * 65536) for v in DISPLAY_P3_COLORANTS[signature])
            struct.pack_into(">3i", profile, offset + 8, *values)
    profile[84:100] = bytes(16)
    return bytes(profile)


def heic(img: Image.Image, **params: object) -> bytes:
    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    img.save(out, format="HEIF", quality=90, **params)
    return out.getvalue()


def avif(img: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format="AVIF", quality=90, speed=10, **params)
    return out.getvalue()


def exif_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def iphone_heic(width: int = 2016, height: int = 1512, fill: tuple[int, int, int] = (180, 140, 90)) -> bytes:
    """Like an iPhone photo: stored landscape with `irot` to show it portrait, a Display P3 profile,
    512 px grid tiles; one colour with a white block in the stored top-left corner."""
    img = Image.new("RGB", (width, height), fill)
    img.paste((255, 255, 255), (0, 0, width // 8, height // 8))
    return heic(img, exif=exif_orientation(6), icc_profile=display_p3_profile(), tile_size=512)


def ten_bit_heic(width: int = 320, height: int = 240) -> bytes:
    """A 10-bit HEIC of a horizontal grey ramp."""
    ramp = pattern(width, height).convert("L").convert("RGB")
    wide = bytes(b for value in ramp.tobytes() for b in struct.pack("<H", value * 257))
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(width, height), data=wide)
    out = io.BytesIO()
    heif.save(out, quality=90)
    return out.getvalue()


def _boxes(data: bytes, start: int, end: int):
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        if size < 8:
            return
        yield kind, at, size
        at += size


def _box(data: bytes, path: list[bytes]) -> tuple[int, int]:
    """(offset, size) of the box at `path`, looking into `meta` (a full box) and `iprp`."""
    start, end = 0, len(data)
    for name in path:
        for kind, at, size in _boxes(data, start, end):
            if kind == name:
                start, end = at + (12 if kind == b"meta" else 8), at + size
                break
        else:
            raise LookupError(name)
    return start, end


def huge_grid_heic(side: int = 50_000) -> bytes:
    """A small gridded HEIC whose primary (grid) item claims side x side, in its `ispe` and grid header."""
    content = bytearray(heic(pattern(1200, 800), tile_size=512))
    start, end = _box(content, [b"meta", b"iprp", b"ipco"])
    for kind, at, _size in _boxes(content, start, end):
        if kind == b"ispe" and struct.unpack_from(">II", content, at + 12) == (1200, 800):
            struct.pack_into(">II", content, at + 12, side, side)
    grid = content.find(struct.pack(">HH", 1200, 800))  # the grid item's 16-bit output size
    struct.pack_into(">HH", content, grid, min(side, 65535), min(side, 65535))
    return bytes(content)


def truncated_avif() -> bytes:
    whole = avif(pattern(640, 480))
    return whole[: len(whole) // 2]


def heif_item_outside_file() -> bytes:
    """A one-item HEIC whose `iloc` puts the image's data a gigabyte past the end of the file."""
    content = bytearray(heic(pattern(320, 240)))
    start, _end = _box(content, [b"meta"])
    at = next(at for kind, at, _size in _boxes(content, start, len(content)) if kind == b"iloc")
    version = content[at + 8]
    sizes = content[at + 12] << 8 | content[at + 13]
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    count_size = 4 if version == 2 else 2
    cursor = at + 14 + count_size
    items = int.from_bytes(content[at + 14 : at + 14 + count_size], "big")
    for _ in range(items):
        cursor += count_size + (2 if version in (1, 2) else 0) + 2 + base_size
        extents = int.from_bytes(content[cursor : cursor + 2], "big")
        cursor += 2
        for _ in range(extents):
            cursor += index_size
            offset = len(content) + (1 << 30)
            content[cursor : cursor + offset_size] = offset.to_bytes(offset_size, "big")
            cursor += offset_size + length_size
    return bytes(content)


# --- videos ---------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


SDR_SOURCE = "testsrc2=size=320x240:rate=10:duration=1"


def sdr_clip(directory: Path) -> Path:
    """The SDR BT.709 source the HDR clips are converted from (H.264, tagged BT.709)."""
    path = Path(directory) / "sdr.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", SDR_SOURCE, "-vf", "format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "10",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", str(path),
    )  # fmt: skip
    return path


def hdr_clip(directory: Path, transfer: str = "arib-std-b67") -> Path:
    """sdr_clip() converted to BT.2020 HLG (or PQ: smpte2084) 10-bit HEVC by zscale, and tagged so."""
    path = Path(directory) / f"hdr-{transfer}.mp4"
    tag = {"arib-std-b67": "arib-std-b67", "smpte2084": "smpte2084"}[transfer]
    convert = (
        "zscale=tin=bt709:pin=bt709:min=bt709:rin=tv:t=linear:npl=100,format=gbrpf32le,"
        f"zscale=t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=203,format=yuv420p10le"
    )
    _ffmpeg(
        "-i", str(sdr_clip(directory)), "-vf", convert,
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:lossless=0:qp=8",
        "-color_primaries", "bt2020", "-color_trc", tag, "-colorspace", "bt2020nc", "-tag:v", "hvc1",
        str(path),
    )  # fmt: skip
    return path


def matrix_rotated(source: Path, degrees: int) -> Path:
    """A copy of an MP4 whose track header's display matrix turns it `degrees` clockwise.

    The matrix is written into the `tkhd` box directly: no legacy `rotate` tag, which current ffmpeg ignores.
    """
    path = source.with_name(f"{source.stem}-matrix-{degrees}.mp4")
    content = bytearray(source.read_bytes())
    tkhd = content.find(b"tkhd")
    version = content[tkhd + 4]
    # After the type: version/flags, times and track id (and a reserved word), duration, 8 reserved
    # bytes, layer, alternate group, volume, 2 reserved bytes, then the matrix.
    matrix_at = tkhd + 4 + 4 + (20 if version == 1 else 12) + 4 + (8 if version == 1 else 4) + 8 + 8
    width, height = struct.unpack_from(">II", content, matrix_at + 36)
    width, height = width >> 16, height >> 16
    # ISO/IEC 14496-12 matrix {a b u c d v x y w}: a, b, c, d, x, y in 16.16, u, v, w in 2.30.
    cos, sin = {90: (0, 1), 180: (-1, 0), 270: (0, -1)}[degrees]
    tx, ty = {90: (height, 0), 180: (width, height), 270: (0, width)}[degrees]
    matrix = (cos << 16, sin << 16, 0, -sin << 16, cos << 16, 0, tx << 16, ty << 16, 1 << 30)
    struct.pack_into(">9i", content, matrix_at, *matrix)
    path.write_bytes(bytes(content))
    return path
