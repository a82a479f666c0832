"""sniff(), image_header_size() and check_dimensions(): the cheap checks the API process runs."""

import io
import struct
from pathlib import Path

import pytest
from PIL import ImageFile

from tests.workers.media import hostile_media as media
from tests.workers.media import phone_media as phone
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES, check_dimensions, image_header_size, sniff
from workers.media.sniff import SniffedType as Sniffed

IMAGES = {
    "image/jpeg": lambda: media.good_jpeg(64, 48),
    "image/png": lambda: media.alpha_png(64, 48),
    "image/gif": lambda: media.animated("GIF", 64, 48),
    "image/webp": lambda: media.animated("WEBP", 64, 48),
    "image/bmp": lambda: media.encode(media.pattern(64, 48), "BMP"),
    "image/tiff": lambda: media.encode(media.pattern(64, 48), "TIFF"),
    "image/heic": lambda: phone.heic(media.pattern(64, 48)),
    "image/avif": lambda: phone.avif(media.pattern(64, 48)),
}
PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP",
               "image/bmp": "BMP", "image/tiff": "TIFF", "image/heic": "HEIF",
               "image/avif": "AVIF"}  # fmt: skip
VIDEOS = {
    "mp4": ("video/mp4", "mov"),
    "mov": ("video/quicktime", "mov"),
    "webm": ("video/webm", "matroska"),
    "mpeg": ("video/mpeg", "mpeg"),
    "mpegts": ("video/mp2t", "mpegts"),
    "avi": ("video/x-msvideo", "avi"),
}


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


@pytest.mark.parametrize("mime_type", sorted(IMAGES))
def test_each_accepted_image_type_is_recognised_by_its_magic_bytes(mime_type: str) -> None:
    sniffed = sniff(IMAGES[mime_type]()[:SNIFF_BYTES])
    assert sniffed == Sniffed("image", mime_type, PIL_FORMATS[mime_type], None)


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_each_accepted_video_container_is_recognised_with_the_demuxer_to_force(
    name: str, videos: dict[str, Path]
) -> None:
    mime_type, demuxer = VIDEOS[name]
    assert sniff(_head(videos[name])) == Sniffed("video", mime_type, None, demuxer)


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    brands = major + bytes(4) + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + bytes(16)


@pytest.mark.parametrize(
    ("head", "mime_type"),
    [
        (_ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"mif1", b"heic", b"miaf"), "image/heic"),
        (_ftyp(b"msf1", b"hevc", b"iso8"), "image/heic"),
        (_ftyp(b"avif", b"mif1", b"avif", b"miaf"), "image/avif"),
        (_ftyp(b"mif1", b"avif", b"miaf"), "image/avif"),
        (_ftyp(b"avis", b"msf1", b"iso8"), "image/avif"),
        (_ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "video/mp4"),
        (_ftyp(b"mp42", b"isom", b"mif1"), "video/mp4"),
        (_ftyp(b"qt  ", b"qt  "), "video/quicktime"),
        (_ftyp(b"M4A ", b"isom", b"heic"), "image/heic"),
    ],
    ids=[
        "heic",
        "mif1-heic",
        "heic-sequence",
        "avif",
        "mif1-avif",
        "avif-sequence",
        "mp4",
        "mp4-major",
        "quicktime",
        "image-brand-over-mp4-compatible",
    ],
)
def test_iso_bmff_brands_tell_heic_and_avif_from_mp4_and_quicktime(head: bytes, mime_type: str) -> None:
    assert sniff(head).mime_type == mime_type


NOT_ACCEPTED = {
    "zero bytes": media.zero_bytes(),
    "text named .jpg": media.text_as_jpg(),
    "svg": media.svg(),
    "zip": media.zip_file(),
    "pdf": media.pdf(),
    "hls playlist": media.hls_playlist(),
    "ffconcat list": media.ffconcat_file(),
    "html": b"<!doctype html><html><body>hi</body></html>",
    "canon cr3 raw": _ftyp(b"crx ", b"crx "),
    "matroska that is not webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska" + bytes(40),
    "bigtiff": b"II+\x00\x08\x00\x00\x00" + bytes(32),
    "BM text": b"BM is how this note starts, it is not a bitmap at all\n",
    "one G byte": b"G" + bytes(SNIFF_BYTES - 1),
}


@pytest.mark.parametrize("name", sorted(NOT_ACCEPTED))
def test_text_archives_playlists_and_unlisted_types_are_not_accepted(name: str) -> None:
    assert sniff(NOT_ACCEPTED[name][:SNIFF_BYTES]) is None


def test_sniff_bytes_reach_four_mpeg_ts_packets() -> None:
    assert SNIFF_BYTES >= 3 * 188 + 1
    packets = (b"\x47" + bytes(187)) * 4
    assert sniff(packets) is not None
    assert sniff(packets[:400]) is None


@pytest.mark.parametrize("mime_type", sorted(IMAGES))
def test_header_size_of_each_image_type_is_its_declared_size(mime_type: str) -> None:
    content = IMAGES[mime_type]()
    assert image_header_size(io.BytesIO(content), sniff(content)) == (64, 48)


def test_header_size_of_a_fifty_thousand_pixel_png_is_read_without_decoding_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: loads.append(image.size))
    content = media.huge_png_header()
    assert image_header_size(io.BytesIO(content), sniff(content)) == (50_000, 50_000)
    assert loads == []


def test_header_size_of_a_maximal_webp_canvas_comes_from_its_header_bytes() -> None:
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4) + (16382).to_bytes(3, "little") * 2
    content = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    assert image_header_size(io.BytesIO(content), sniff(content)) == (16_383, 16_383)


def test_header_size_leaves_the_file_at_its_start_for_the_next_reader() -> None:
    fp = io.BytesIO(media.good_jpeg(64, 48))
    image_header_size(fp, sniff(fp.getvalue()))
    assert fp.tell() == 0


def test_header_size_of_an_unreadable_header_is_corrupt() -> None:
    content = b"\x89PNG\r\n\x1a\n" + b"garbage that is no chunk"
    with pytest.raises(MediaRejected) as refused:
        image_header_size(io.BytesIO(content), sniff(content))
    assert refused.value.code == "corrupt"


def test_header_size_of_an_empty_file_is_empty() -> None:
    with pytest.raises(MediaRejected) as refused:
        image_header_size(io.BytesIO(b""), sniff(media.good_jpeg(8, 8)))
    assert refused.value.code == "empty"


@pytest.mark.parametrize(
    ("width", "height", "code"),
    [
        (10_000, 10_000, None),
        (1, 1, None),
        (10_001, 10, "too-large-dimensions"),
        (10, 10_001, "too-large-dimensions"),
        (50_000, 50_000, "too-large-dimensions"),
        (0, 10, "corrupt"),
    ],
)
def test_dimensions_are_checked_side_by_side_before_the_pixel_count(
    width: int, height: int, code: str
) -> None:
    if code is None:
        check_dimensions(width, height, MediaLimits())
        return
    with pytest.raises(MediaRejected) as refused:
        check_dimensions(width, height, MediaLimits())
    assert refused.value.code == code


def test_pixel_count_over_the_limit_is_too_many_pixels_even_when_each_side_fits() -> None:
    with pytest.raises(MediaRejected) as refused:
        check_dimensions(5_000, 5_000, MediaLimits(max_pixels=20_000_000))
    assert refused.value.code == "too-many-pixels"


class CountingReader(io.BytesIO):
    """A file object that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


@pytest.mark.parametrize("make", [phone.heic, phone.avif], ids=["heic", "avif"])
def test_header_size_of_heic_and_avif_reads_their_boxes_not_their_image_data(make) -> None:
    content = make(media.pattern(1600, 1200))
    fp = CountingReader(content)
    assert image_header_size(fp, sniff(content)) == (1600, 1200)
    assert fp.bytes_read < 4096 < len(content) // 4


def test_heic_whose_meta_box_claims_more_than_the_bound_is_corrupt() -> None:
    content = bytearray(phone.heic(media.pattern(64, 48)))
    meta = content.find(b"meta") - 4
    struct.pack_into(">I", content, meta, 64 * 1024 * 1024)
    with pytest.raises(MediaRejected) as refused:
        image_header_size(io.BytesIO(bytes(content)), sniff(bytes(content)))
    assert refused.value.code == "corrupt"
