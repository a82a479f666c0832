"""How many frames an animated GIF, WebP or PNG holds, read from its block structure without decoding."""

from typing import BinaryIO

from workers.media.sniff import GIF, PNG, WEBP, SniffedType

_GIF_EXTENSION = 0x21
_GIF_IMAGE = 0x2C
_GIF_TRAILER = 0x3B


def count_frames(fp: BinaryIO, sniffed: SniffedType, stop_after: int) -> int:
    """Frames in the file, counting no further than `stop_after` + 1; 1 for formats that do not animate.

    A truncated or malformed structure ends the count: the decoder reports that, not this.
    """
    fp.seek(0)
    try:
        if sniffed == GIF:
            return _gif_frames(fp, stop_after)
        if sniffed == WEBP:
            return _webp_frames(fp, stop_after)
        if sniffed == PNG:
            return _png_frames(fp)
        return 1
    finally:
        fp.seek(0)


def _gif_frames(fp: BinaryIO, stop_after: int) -> int:
    header = fp.read(13)  # signature, logical screen descriptor
    if len(header) < 13:
        return 0
    _skip_colour_table(fp, header[10])
    frames = 0
    while frames <= stop_after:
        block = fp.read(1)
        if not block or block[0] == _GIF_TRAILER:
            break
        if block[0] == _GIF_EXTENSION:
            fp.read(1)  # label
        elif block[0] == _GIF_IMAGE:
            descriptor = fp.read(9)
            if len(descriptor) < 9:
                break
            _skip_colour_table(fp, descriptor[8])
            fp.read(1)  # LZW minimum code size
            frames += 1
        else:
            break
        if not _skip_sub_blocks(fp):
            break
    return frames


def _skip_colour_table(fp: BinaryIO, flags: int) -> None:
    if flags & 0x80:
        fp.seek(3 << ((flags & 7) + 1), 1)


def _skip_sub_blocks(fp: BinaryIO) -> bool:
    # Data sub-blocks: a length byte (1..255) and that many bytes, until a zero length.
    while True:
        size = fp.read(1)
        if not size:
            return False
        if size[0] == 0:
            return True
        fp.seek(size[0], 1)


def _webp_frames(fp: BinaryIO, stop_after: int) -> int:
    fp.seek(12)  # "RIFF", size, "WEBP"
    frames = 0
    while frames <= stop_after:
        chunk = fp.read(8)
        if len(chunk) < 8:
            break
        if chunk[:4] == b"ANMF":
            frames += 1
        size = int.from_bytes(chunk[4:], "little")
        fp.seek(size + (size & 1), 1)
    return max(frames, 1)


def _png_frames(fp: BinaryIO) -> int:
    # An animated PNG declares its frame count in an acTL chunk before the first image data.
    fp.seek(8)
    while True:
        chunk = fp.read(8)
        if len(chunk) < 8 or chunk[4:] in (b"IDAT", b"IEND"):
            return 1
        size = int.from_bytes(chunk[:4], "big")
        if chunk[4:] == b"acTL":
            return max(1, int.from_bytes(fp.read(4), "big"))
        fp.seek(size + 4, 1)  # data and CRC
