"""make_image_renditions(): one decode, sRGB, oriented, metadata-free WebP renditions and a placeholder."""

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageOps, JpegImagePlugin

from tests.workers.media import hostile_media as media
from workers.media import images
from workers.media.color import resizable
from workers.media.images import make_image_renditions, make_thumbnail
from workers.media.limits import MediaLimits
from workers.media.sniff import sniff

LIMITS = MediaLimits()


def renditions(content: bytes, limits: MediaLimits = LIMITS):
    return make_image_renditions(io.BytesIO(content), sniff(content), limits)


def decoded(webp: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(webp), formats=["WEBP"])
    img.load()
    return img


def webp_chunks(webp: bytes) -> list[bytes]:
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    chunks, at = [], 12
    while at + 8 <= len(webp):
        kind, size = webp[at : at + 4], int.from_bytes(webp[at + 4 : at + 8], "little")
        chunks.append(kind)
        at += 8 + size + (size & 1)
    return chunks


def thumbhash_average(placeholder: str) -> tuple[float, float, float, float]:
    """The reference thumbHashToAverageRGBA, as 0..255 values."""
    h = base64.b64decode(placeholder)
    header = h[0] | h[1] << 8 | h[2] << 16
    lum, p, q = (header & 63) / 63, ((header >> 6) & 63) / 31.5 - 1, ((header >> 12) & 63) / 31.5 - 1
    alpha = (h[5] & 15) / 15 if header >> 23 else 1.0
    b = lum - 2 / 3 * p
    r = (3 * lum - b + q) / 2
    g = r - q
    return tuple(255 * min(1.0, max(0.0, v)) for v in (r, g, b, alpha))


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a.convert("RGB"), np.float64), np.asarray(b.convert("RGB"), np.float64)
    return float(10 * np.log10(255**2 / np.mean((x - y) ** 2)))


def test_large_jpeg_gets_a_1600_preview_and_a_400_thumbnail() -> None:
    result = renditions(media.good_jpeg(2400, 1800))
    assert (result.width, result.height) == (2400, 1800)
    assert decoded(result.preview).size == (1600, 1200)
    assert decoded(result.thumbnail).size == (400, 300)


def test_image_up_to_1600_px_gets_no_preview() -> None:
    result = renditions(media.good_jpeg(1600, 900))
    assert result.preview is None
    assert decoded(result.thumbnail).size == (400, 225)


def test_small_image_is_never_upscaled() -> None:
    result = renditions(media.good_jpeg(120, 80))
    assert decoded(result.thumbnail).size == (120, 80)
    assert result.preview is None


def test_portrait_image_is_fitted_by_its_height() -> None:
    assert decoded(renditions(media.alpha_png(300, 900)).thumbnail).size == (133, 400)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_gives_what_pillows_exif_transpose_gives(orientation: int) -> None:
    content = media.oriented_jpeg(1200, 800, orientation)
    result = renditions(content)
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(content))).convert("RGB")
    thumb = decoded(result.thumbnail)
    assert (result.width, result.height) == reference.size
    assert thumb.size == ((400, 267) if orientation < 5 else (267, 400))
    assert psnr(thumb, reference.resize(thumb.size, Image.Resampling.LANCZOS)) >= 30


def test_exif_orientation_six_swaps_the_dimensions_and_turns_the_pixels() -> None:
    stored = Image.new("RGB", (2000, 1000), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 1000, 1000))  # left half red: the top once turned
    exif = Image.Exif()
    exif[0x0112] = 6
    result = renditions(media.encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (result.width, result.height) == (1000, 2000)
    thumb = decoded(result.thumbnail).convert("RGB")
    assert thumb.size == (200, 400)
    assert decoded(result.preview).size == (800, 1600)
    top, bottom = thumb.getpixel((100, 50)), thumb.getpixel((100, 350))
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_cmyk_jpeg_is_converted_to_srgb() -> None:
    thumb = decoded(renditions(media.cmyk_jpeg()).thumbnail)
    assert thumb.mode == "RGB"
    r, g, b = thumb.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_embedded_icc_profile_is_applied_before_the_profile_is_dropped() -> None:
    thumb = decoded(renditions(media.icc_tagged_jpeg(fill=(220, 20, 20))).thumbnail)
    r, _, b = thumb.getpixel((10, 10))
    assert b > 150 and r < 80  # red in a profile whose red and blue primaries are swapped


def test_alpha_is_kept() -> None:
    thumb = decoded(renditions(media.alpha_png(400, 200)).thumbnail)
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((50, 100))[3] == 255
    assert thumb.getpixel((350, 100))[3] == 0


def test_palette_image_with_transparency_keeps_its_transparency() -> None:
    thumb = decoded(renditions(media.palette_png_with_transparency()).thumbnail)
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((20, 50))[3] == 0
    assert thumb.getpixel((180, 50))[1] > 150 and thumb.getpixel((180, 50))[3] == 255


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits_not_clipped() -> None:
    thumb = decoded(renditions(media.sixteen_bit_png(value=32896)).thumbnail).convert("RGB")
    assert all(120 <= v <= 136 for v in thumb.getpixel((10, 10)))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_image_is_rendered_from_its_first_frame(fmt: str) -> None:
    thumb = decoded(renditions(media.animated(fmt)).thumbnail).convert("RGB")
    r, _, b = thumb.getpixel((10, 10))
    assert r > 200 and b < 60


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP", "GIF"])
def test_each_other_accepted_format_gets_renditions(fmt: str) -> None:
    result = renditions(media.encode(media.pattern(800, 600), fmt))
    assert (result.width, result.height) == (800, 600)
    assert decoded(result.thumbnail).size == (400, 300)


def test_renditions_carry_no_exif_icc_or_xmp() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = 1
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    content = media.good_jpeg(
        2000, 1500, exif=exif.tobytes(), icc_profile=media.swapped_primaries_profile(), xmp=xmp
    )
    result = renditions(content)
    for webp in (result.thumbnail, result.preview):
        chunks = webp_chunks(webp)
        assert not {b"EXIF", b"ICCP", b"XMP "} & set(chunks), chunks
        assert b"Camera maker" not in webp


def test_thumbnail_is_at_least_35_db_from_a_full_decode_lanczos_reference() -> None:
    content = media.good_jpeg(3000, 2000, quality=92)
    reference = Image.open(io.BytesIO(content))
    reference = reference.convert("RGB").resize((400, 267), Image.Resampling.LANCZOS)
    assert psnr(decoded(renditions(content).thumbnail), reference) >= 35


def test_thumbnail_only_path_matches_the_renditions_thumbnail_size() -> None:
    content = media.good_jpeg(1200, 800)
    assert decoded(make_thumbnail(io.BytesIO(content), sniff(content), LIMITS)).size == (400, 267)


def test_placeholder_is_a_short_thumbhash_of_the_average_colour() -> None:
    result = renditions(media.encode(Image.new("RGB", (300, 200), (200, 40, 40)), "PNG"))
    assert len(result.placeholder) <= 128
    r, g, b, a = thumbhash_average(result.placeholder)
    assert abs(r - 200) < 12 and abs(g - 40) < 12 and abs(b - 40) < 12 and a == 255


def test_placeholder_of_a_transparent_image_records_alpha() -> None:
    result = renditions(media.alpha_png(300, 200))
    assert len(result.placeholder) <= 128
    assert thumbhash_average(result.placeholder)[3] < 255


def test_a_path_and_a_file_object_give_the_same_renditions(tmp_path) -> None:
    content = media.good_jpeg(900, 600)
    path = media.write(tmp_path, "photo.jpg", content)
    assert make_image_renditions(str(path), sniff(content), LIMITS) == renditions(content)
    assert make_image_renditions(path, sniff(content), LIMITS) == renditions(content)


def test_image_over_pillows_default_bomb_limit_but_within_ours_renders_without_warnings() -> None:
    side = 9_500  # 90.25 M pixels: over Pillow's 89.5 M default, under MediaLimits' 100 M
    content = media.encode(Image.new("1", (side, side), 1), "PNG")
    result = renditions(content)  # pytest turns any DecompressionBombWarning into an error
    assert (result.width, result.height) == (side, side)


def test_pillows_bomb_limit_is_raised_to_ours_and_never_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    renditions(media.good_jpeg(64, 48))
    assert LIMITS.max_pixels == Image.MAX_IMAGE_PIXELS
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500_000_000)
    renditions(media.good_jpeg(64, 48))
    assert Image.MAX_IMAGE_PIXELS == 500_000_000


@pytest.fixture
def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> set[tuple[int, int]]:
    """The sizes JPEGs were decoded at while the test ran."""
    sizes = set()
    original = JpegImagePlugin.JpegImageFile.load

    def recording(self):
        pixels = original(self)
        sizes.add(self.size)
        return pixels

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording)
    return sizes


def test_twelve_megapixel_jpeg_thumbnail_is_decoded_at_an_eighth_of_its_size(decoded_sizes) -> None:
    content = media.good_jpeg(4000, 3000)
    assert decoded(make_thumbnail(io.BytesIO(content), sniff(content), LIMITS)).size == (400, 300)
    assert decoded_sizes == {(500, 375)}


def test_renditions_of_a_twelve_megapixel_jpeg_come_from_one_half_scale_decode(decoded_sizes) -> None:
    result = renditions(media.good_jpeg(4000, 3000))
    assert decoded(result.preview).size == (1600, 1200)
    assert decoded_sizes == {(2000, 1500)}


def test_large_non_jpeg_is_box_reduced_by_a_whole_factor_before_resampling(monkeypatch) -> None:
    factors = []
    original = Image.Image.reduce

    def recording(self, factor, box=None):
        factors.append(factor)
        return original(self, factor, box)

    monkeypatch.setattr(Image.Image, "reduce", recording)
    content = media.encode(media.pattern(2400, 1800), "PNG")
    assert decoded(make_thumbnail(io.BytesIO(content), sniff(content), LIMITS)).size == (400, 300)
    assert factors == [(3, 3)]  # 6x to go: reduce 3x, leaving a 2x Lanczos step


def _wide_or_alpha(mode: str, width: int = 2411, height: int = 1607) -> Image.Image:
    """A detailed image in `mode`, sized so that reduce() leaves partial blocks at both edges."""
    y, x = np.mgrid[0:height, 0:width]
    if mode == "I;16":
        return Image.fromarray(((x * 37 + y * 11) % 65_536).astype(np.uint16))
    if mode in ("I", "F"):
        values = (x * 1000 - y * 999).astype(np.int32)
        return (
            Image.fromarray(values, "I")
            if mode == "I"
            else Image.fromarray((values / 3e6).astype(np.float32))
        )
    if mode == "P":
        img = Image.fromarray(((x // 7 + y // 5) % 256).astype(np.uint8)).convert("P")
        img.info["transparency"] = 3
        return img
    bands = [x % 256, y % 256, (x + y) % 256, (x // 9 + y // 13) % 256]
    return Image.fromarray(np.stack(bands[: len(mode)], axis=2).astype(np.uint8), mode)


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "RGBA", "LA", "P"])
def test_wide_and_alpha_images_shrink_a_strip_at_a_time_to_what_a_whole_image_resize_gives(mode: str) -> None:
    img = _wide_or_alpha(mode)
    target = images._fit(img.size, 400)
    reference = resizable(img).resize(target, Image.Resampling.LANCZOS, reducing_gap=images.REDUCING_GAP)

    shrunk = images._shrunk(img.copy(), 400)

    assert (shrunk.mode, shrunk.size) == (reference.mode, reference.size)
    assert np.array_equal(np.asarray(shrunk), np.asarray(reference)) or psnr(shrunk, reference) >= 50


@pytest.mark.parametrize("mode", ["I;16", "RGBA"])
def test_wide_and_alpha_images_are_never_converted_whole(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Converting 100 MP to float or to premultiplied alpha costs 4-10 bytes a pixel on top of the decode.
    img = _wide_or_alpha(mode, 4000, 3000)
    converted = []
    original = Image.Image.convert

    def recording(self, *args, **kwargs):
        converted.append(self.width * self.height)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", recording)
    images._shrunk(img, 1600, Image.Resampling.BILINEAR)

    assert converted and max(converted) <= img.width * img.height // 4


def test_a_photos_preview_is_resized_whole_and_a_larger_one_in_bands_that_match_it(monkeypatch) -> None:
    from workers.media import color

    img = _wide_or_alpha("RGB", 2000, 1500)
    box = (0, 0, 2000, 1500)
    calls = []
    original = Image.Image.resize

    def recording(self, size, *args, **kwargs):
        calls.append(size)
        return original(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", recording)
    whole = color._resized_in_strips(img, (1600, 1200), Image.Resampling.BILINEAR, box)
    assert calls == [(1600, 1200)]  # 1600 x 1500 x 4 bytes (9.6 MB) is under the limit: one resize

    calls.clear()
    monkeypatch.setattr(color, "_UNBANDED_BYTES", 1600 * 1500 * 4 - 1)
    banded = color._resized_in_strips(img, (1600, 1200), Image.Resampling.BILINEAR, box)
    assert len(calls) > 1 and all(width == 1600 for width, _ in calls)
    assert np.array_equal(np.asarray(banded), np.asarray(whole)) or psnr(banded, whole) >= 50
