"""The one check every way media comes in shares: what the bytes are, and whether their header fits."""

from typing import BinaryIO

from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES, SniffedType, check_dimensions, image_header_size, sniff


def vet(stream: BinaryIO, limits: MediaLimits, *, kind: str | None = None) -> SniffedType:
    """The accepted type the magic bytes prove (of `kind` when given), an image's header within limits.

    Decodes no pixels, so the API may run it. Raises MediaRejected (`empty`, `unsupported-format`,
    `type-mismatch`, or a header's `corrupt`/`too-large-dimensions`/`too-many-pixels`); leaves the
    stream at its start.
    """
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if not head:
        raise MediaRejected("empty", "the file is empty")
    sniffed = sniff(head)
    if sniffed is None:
        raise MediaRejected("unsupported-format", "the bytes are not an accepted image or video type")
    if kind is not None and sniffed.kind != kind:
        raise MediaRejected("type-mismatch", f"the bytes are {sniffed.kind}, not {kind}")
    if sniffed.kind == "image":
        check_dimensions(*image_header_size(stream, sniffed), limits)
    stream.seek(0)
    return sniffed
