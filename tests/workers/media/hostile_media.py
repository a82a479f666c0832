"""Generators for good and hostile media, shared by the media tests and the end-to-end worker tests.

Every file is made here (Pillow, zlib, ffmpeg's lavfi sources); nothing is downloaded or committed.
Image generators return bytes; video generators write into a directory and return the path.
"""

from __future__ import annotations

import io
import struct
import subprocess
import zipfile
import zlib
from functools import cache
from pathlib import Path

from PIL import Image, ImageCms, ImageDraw

# --- good images -----------------------------------------------------------------------------


def pattern(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A smooth, detailed, non-flat picture: gradients in each channel plus soft-edged shapes."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = red.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    img = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(img)
    step = max(2, min(width, height) // 6)
    for i, x in enumerate(range(0, width, step)):
        colour = ((i * 70) % 256, (i * 130 + 60) % 256, (i * 40 + 120) % 256)
        draw.ellipse([x, height // 4, x + step, height // 4 + step], fill=colour)
    draw.rectangle([width // 10, height * 2 // 3, width // 3, height * 5 // 6], fill=(240, 240, 30))
    return img.convert(mode) if mode != "RGB" else img


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def good_jpeg(width: int = 640, height: int = 480, *, quality: int = 90, **params: object) -> bytes:
    return encode(pattern(width, height), "JPEG", quality=quality, **params)


def oriented_jpeg(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored width x height whose EXIF says to display it transposed per `orientation`."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return good_jpeg(width, height, exif=exif.tobytes())


def cmyk_jpeg(
    width: int = 320, height: int = 240, fill: tuple[int, int, int, int] = (0, 255, 255, 0)
) -> bytes:
    """A CMYK JPEG of one colour (default: full magenta + yellow, i.e. red)."""
    return encode(Image.new("CMYK", (width, height), fill), "JPEG", quality=95)


def swapped_primaries_profile() -> bytes:
    """An sRGB ICC profile with the red and blue colorants swapped: red pixels in it mean blue."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = struct.unpack_from(">I", profile, 128)[0]
    entries = {bytes(profile[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = (
        profile[blue + 4 : blue + 12],
        profile[red + 4 : red + 12],
    )
    return bytes(profile)


def icc_tagged_jpeg(width: int = 320, height: int = 240, fill: tuple[int, int, int] = (220, 20, 20)) -> bytes:
    """A one-colour JPEG tagged with swapped_primaries_profile(): correct conversion turns it blue."""
    return encode(
        Image.new("RGB", (width, height), fill), "JPEG", quality=95, icc_profile=swapped_primaries_profile()
    )


def alpha_png(width: int = 320, height: int = 240) -> bytes:
    """RGBA PNG: opaque left half, fully transparent right half."""
    img = pattern(width, height).convert("RGBA")
    img.paste((0, 0, 0, 0), (width // 2, 0, width, height))
    return encode(img, "PNG")


def palette_png_with_transparency(width: int = 200, height: int = 100) -> bytes:
    """Mode P PNG (tRNS): index 0 transparent on the left half, index 1 opaque green on the right."""
    img = Image.new("P", (width, height), 0)
    img.putpalette([0, 0, 0, 0, 200, 0] + [0, 0, 0] * 254)
    img.paste(1, (width // 2, 0, width, height))
    return encode(img, "PNG", transparency=0)


def sixteen_bit_png(width: int = 200, height: int = 100, value: int = 32896) -> bytes:
    """Grayscale 16-bit PNG (Pillow mode I;16) of one value: 32896 is mid-gray, 128 in 8 bits."""
    return encode(Image.new("I;16", (width, height), value), "PNG")


def animated(fmt: str, width: int = 120, height: int = 90, frames: int = 3) -> bytes:
    """Animated GIF, WebP or PNG whose first frame is red and later frames blue."""
    # Each blue a shade apart: encoders merge identical consecutive frames.
    images = [
        Image.new("RGB", (width, height), (255, 0, 0) if i == 0 else (0, 0, 256 - 8 * i))
        for i in range(frames)
    ]
    return encode(images[0], fmt, save_all=True, append_images=images[1:], duration=100, loop=0)


def many_frames_gif(frames: int = 3000, side: int = 32) -> bytes:
    """A GIF with thousands of frames, alternating so Pillow cannot merge them; frame 0 is red."""
    images = [Image.new("P", (side, side), i % 2) for i in range(frames)]
    for img in images:
        img.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)


def exif_with_two_resolutions(orientation: int = 1) -> bytes:
    """EXIF whose XResolution holds two values where one is expected, as some cameras write it."""
    ifd = struct.pack("<H", 2)
    ifd += struct.pack("<HHLHH", 0x0112, 3, 1, orientation, 0)  # SHORT, inline
    ifd += struct.pack("<HHLL", 0x011A, 5, 2, 8 + len(ifd) + 12 + 4)  # two RATIONALs, after the IFD
    ifd += struct.pack("<L", 0)
    return b"Exif\x00\x00II*\x00" + struct.pack("<L", 8) + ifd + struct.pack("<LLLL", 72, 1, 72, 1)


# --- hostile images and non-media ----------------------------------------------------------------


@cache
def too_many_frames_gif() -> bytes:
    """12,000 frames: over MediaLimits' default 10,000 (a second to make, so made once)."""
    return many_frames_gif(12_000)


def gif_outgrowing_its_screen(width: int, height: int) -> bytes:
    """A GIF whose header declares a 10x10 screen and whose only frame is width x height."""
    content = bytearray(encode(Image.new("P", (width, height), 0), "GIF"))
    content[6:10] = struct.pack("<HH", 10, 10)
    return bytes(content)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~70-byte PNG declaring width x height 8-bit RGB (7.5 GB decoded for the default size)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def tiff_with_thousands_of_overlapping_tags(tags: int = 10_000, side: int = 8) -> bytes:
    """A valid 8x8 greyscale TIFF whose IFD adds `tags` private tags, each claiming ~100 KB of data at
    the same offset: ~120 KB of file that asks a reader trusting each tag to allocate ~1 GB."""
    ifd_offset = 8
    entries = 9 + tags
    pixels_offset = ifd_offset + 2 + entries * 12 + 4
    claimed = pixels_offset - ifd_offset - 64  # every tag's data lies inside the file, on top of the IFD
    real = [
        (256, 3, 1, side),  # ImageWidth
        (257, 3, 1, side),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # PhotometricInterpretation: black is zero
        (273, 4, 1, pixels_offset),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 3, 1, side),  # RowsPerStrip
        (279, 4, 1, side * side),  # StripByteCounts
    ]
    # Tags 1000 and up are unassigned: nothing in the reader gives them a meaning of its own.
    junk = [(1000 + number, 7, claimed, ifd_offset) for number in range(tags)]  # type 7: UNDEFINED bytes
    ifd = struct.pack("<H", entries)
    for tag, kind, count, value in real + junk:
        packed_value = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed_value
    ifd += struct.pack("<I", 0)  # no next IFD
    pixels = bytes(range(0, 256, 256 // (side * side) or 1))[: side * side].ljust(side * side, b"\x80")
    return b"II*\x00" + struct.pack("<I", ifd_offset) + ifd + pixels


def truncated_jpeg() -> bytes:
    """The first half of a valid 640x480 JPEG: the header parses, the scan runs out."""
    whole = good_jpeg(640, 480)
    return whole[: len(whole) // 2]


def zero_bytes() -> bytes:
    return b""


def text_as_jpg() -> bytes:
    return b"Just some notes somebody saved as holiday.jpg\nline two\n"


def svg() -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        b'<image href="file:///etc/passwd"/></svg>\n'
    )


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("image.jpg", good_jpeg(32, 32))
    return out.getvalue()


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def hls_playlist(target: str = "/etc/passwd") -> bytes:
    """An HLS playlist whose only segment is a local file: followed, it would read that file."""
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile://{target}\n#EXT-X-ENDLIST\n"
    ).encode()


def ffconcat_file(target: str = "/etc/passwd") -> bytes:
    """An ffconcat list naming a local file: followed, it would read that file."""
    return f"ffconcat version 1.0\nfile '{target}'\n".encode()


def malformed_exif_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A JPEG whose EXIF claims 65535 IFD entries, has three, and points the orientation past the end."""
    bogus = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x12\x01\x03\x00\xff\xff\xff\x7f" * 3
    return good_jpeg(width, height, exif=bogus)


# --- videos ---------------------------------------------------------------------------------------


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, capture_output=True)


def video(
    directory: Path,
    name: str,
    *,
    seconds: float = 1.0,
    size: str = "160x120",
    rate: int = 10,
    codec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
    container: tuple[str, ...] = (),
) -> Path:
    """A lavfi testsrc clip (an ascending counter, colour bars) encoded as asked."""
    path = Path(directory) / name
    source = f"testsrc=size={size}:rate={rate}:duration={seconds}"
    _ffmpeg("-f", "lavfi", "-i", source, *codec, *container, str(path))
    return path


def small_mp4(directory: Path, seconds: float = 1.0, size: str = "160x120") -> Path:
    return video(directory, f"small-{seconds:g}s-{size}.mp4", seconds=seconds, size=size)


def rotated_mp4(directory: Path, degrees: int = 90) -> Path:
    """An MP4 with a display matrix (ffmpeg 5.1 writes one from the rotate tag on stream copy)."""
    plain = small_mp4(directory, 1.0, "160x120")
    path = Path(directory) / f"rotated-{degrees}.mp4"
    _ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(path))
    return path


def audio_only_mp4(directory: Path) -> Path:
    path = Path(directory) / "audio-only.mp4"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", "-f", "mp4", str(path))
    return path


def long_video(directory: Path, seconds: int = 7300) -> Path:
    """A 16x16, 1 fps H.264 video longer than the 7,200 s limit (about 100 KB, well under a second)."""
    path = Path(directory) / f"long-{seconds}s.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", f"color=c=black:s=16x16:r=1:d={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage", str(path),
    )  # fmt: skip
    return path


def write(directory: Path, name: str, content: bytes) -> Path:
    """content saved as directory/name (for hostile bytes that must be handed over as a file)."""
    path = Path(directory) / name
    path.write_bytes(content)
    return path
