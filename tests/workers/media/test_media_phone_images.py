"""HEIC and AVIF renditions: primary image, orientation applied once, colour in sRGB, a display copy."""

import io

import numpy as np
import pytest
from PIL import Image

from tests.workers.media import hostile_media as media
from tests.workers.media import phone_media as phone
from workers.media.codecs import image_codec_support
from workers.media.images import make_image_renditions
from workers.media.limits import MediaLimits
from workers.media.sniff import sniff

LIMITS = MediaLimits()
# LittleCMS against the independent matrix maths: rounding of 8-bit values and of the profile's 16.16.
COLOUR_TOLERANCE = 3


def renditions(content: bytes, limits: MediaLimits = LIMITS):
    return make_image_renditions(io.BytesIO(content), sniff(content), limits)


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data), formats=["WEBP", "JPEG"])
    img.load()
    return img.convert("RGB")


def p3_in_srgb(colour: tuple[int, int, int]) -> np.ndarray:
    """A Display P3 colour as sRGB, by the standard matrices (no colour management library)."""
    linear = np.array([c / 255 for c in colour])
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    srgb = np.clip(np.array(phone.P3_TO_SRGB) @ linear, 0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return np.round(encoded * 255)


def centre(img: Image.Image) -> np.ndarray:
    width, height = img.size
    return np.asarray(img.crop((width // 2 - 4, height // 2 - 4, width // 2 + 4, height // 2 + 4))).mean(
        axis=(0, 1)
    )


def test_this_build_decodes_heic_and_avif() -> None:
    assert image_codec_support() == {"AVIF": True, "HEIC": True}


@pytest.fixture(scope="module")
def iphone() -> bytes:
    return phone.iphone_heic()


def test_iphone_heic_is_measured_upright_and_gets_thumbnail_preview_and_display(iphone: bytes) -> None:
    made = renditions(iphone)
    assert (made.width, made.height) == (1512, 2016)  # stored 2016x1512, irot turns it portrait
    assert decoded(made.thumbnail).size == (300, 400)
    assert decoded(made.preview).size == (1200, 1600)
    display = decoded(made.display)
    assert made.display[8:12] == b"WEBP"
    assert display.size == (1512, 2016)


def test_iphone_heic_orientation_is_applied_exactly_once(iphone: bytes) -> None:
    # The white block is in the stored top-left corner: turned 90 degrees clockwise once, it is top-right.
    for data in (renditions(iphone).display, renditions(iphone).thumbnail):
        img = decoded(data)
        width, height = img.size
        corners = {
            "top-right": img.getpixel((width - 3, 3)),
            "top-left": img.getpixel((2, 2)),
            "bottom-right": img.getpixel((width - 3, height - 3)),
        }
        assert min(corners["top-right"]) > 240
        assert max(corners["top-left"]) < 240 and max(corners["bottom-right"]) < 240


def test_display_p3_heic_comes_out_in_srgb(iphone: bytes) -> None:
    made = renditions(iphone)
    expected = p3_in_srgb((180, 140, 90))
    assert np.abs(expected - np.array((180, 140, 90))).max() >= 8  # P3 differs visibly from sRGB here
    for data in (made.display, made.preview, made.thumbnail):
        assert np.abs(centre(decoded(data)) - expected).max() <= COLOUR_TOLERANCE


def test_heic_with_nclx_display_p3_primaries_comes_out_in_srgb() -> None:
    nclx = {"color_primaries": 12, "transfer_characteristics": 13, "matrix_coefficients": 6,
            "full_range_flag": 1}  # fmt: skip
    content = phone.heic(Image.new("RGB", (320, 240), (180, 140, 90)), nclx_profile=nclx)
    assert Image.open(io.BytesIO(content)).info["nclx_profile"]["color_primaries"] == 12
    made = renditions(content)
    assert np.abs(centre(decoded(made.display)) - p3_in_srgb((180, 140, 90))).max() <= COLOUR_TOLERANCE


def test_ten_bit_heic_is_reduced_to_eight_bits_keeping_its_ramp() -> None:
    content = phone.ten_bit_heic(320, 240)
    made = renditions(content)
    reference = np.asarray(media.pattern(320, 240).convert("L"), dtype=float)
    display = np.asarray(decoded(made.display).convert("L"), dtype=float)
    assert np.abs(display - reference).mean() < 4  # not clipped to white, not shifted by 2 bits


def test_heic_burst_renders_its_primary_image_only() -> None:
    red, blue = Image.new("RGB", (200, 100), (220, 20, 20)), Image.new("RGB", (200, 100), (20, 20, 220))
    content = phone.heic(red, save_all=True, append_images=[blue], primary_index=1)
    made = renditions(content)
    r, _, b = centre(decoded(made.thumbnail))
    assert b > 150 and r < 80


def test_avif_with_exif_orientation_gets_upright_renditions_and_a_display_copy() -> None:
    img = Image.new("RGB", (2000, 1500), (30, 160, 60))
    img.paste((255, 255, 255), (0, 0, 250, 250))
    made = renditions(phone.avif(img, exif=phone.exif_orientation(6)))
    assert (made.width, made.height) == (1500, 2000)
    assert decoded(made.preview).size == (1200, 1600)
    assert decoded(made.thumbnail).size == (300, 400)
    display = decoded(made.display)
    assert display.size == (1500, 2000)
    assert min(display.getpixel((1490, 10))) > 240 and max(display.getpixel((10, 10))) < 240
    assert np.abs(centre(display) - np.array((30, 160, 60))).max() <= 6


def test_avif_with_an_icc_profile_is_converted_to_srgb() -> None:
    content = phone.avif(Image.new("RGB", (320, 240), (180, 140, 90)), icc_profile=phone.display_p3_profile())
    made = renditions(content)
    assert np.abs(centre(decoded(made.display)) - p3_in_srgb((180, 140, 90))).max() <= COLOUR_TOLERANCE + 3


def test_tiff_gets_a_display_copy_and_browser_formats_do_not() -> None:
    assert renditions(media.encode(media.pattern(320, 240), "TIFF")).display is not None
    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP"):
        assert renditions(media.encode(media.pattern(320, 240), fmt)).display is None, fmt


def test_display_copy_is_full_size_at_exactly_the_pixel_limit() -> None:
    # Larger originals are refused from their header, so the cap only matters if a decode outgrows it.
    made = renditions(phone.heic(media.pattern(800, 600)), MediaLimits(max_pixels=480_000))
    assert decoded(made.display).size == (800, 600)


def test_display_copy_past_webps_largest_side_is_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.media.images.WEBP_MAX_SIDE", 500)
    made = renditions(phone.heic(media.pattern(800, 600)))
    assert made.display[:3] == b"\xff\xd8\xff"
    assert decoded(made.display).size == (800, 600)
