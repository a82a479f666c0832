"""Hostile inputs: each is refused with its code, quickly, without following or decoding anything."""

import io
import os
import struct
import time
import tracemalloc
import warnings
from pathlib import Path

import pytest
from PIL import GifImagePlugin, Image, ImageFile

from tests.workers.media import hostile_media as media
from tests.workers.media import phone_media as phone
from workers.media.children import limited
from workers.media.errors import MediaRejected
from workers.media.images import make_image_renditions
from workers.media.limits import MediaLimits
from workers.media.sniff import AVIF, HEIC, JPEG, MP4, PNG, SNIFF_BYTES, SniffedType, image_header_size, sniff
from workers.media.video import probe_video

LIMITS = MediaLimits()


@pytest.fixture
def pixel_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Formats whose pixels Pillow opened for decoding while the test ran."""
    opened = []
    original = Image.open

    def recording(fp, mode="r", formats=None):
        opened.append(",".join(formats or ()))
        return original(fp, mode, formats)

    monkeypatch.setattr(Image, "open", recording)
    return opened


def refusal(call, *args) -> str:
    with pytest.raises(MediaRejected) as refused:
        call(*args)
    return refused.value.code


def test_png_declaring_fifty_thousand_pixels_square_is_refused_as_too_large_without_decoding(
    pixel_work: list[str],
) -> None:
    content = media.huge_png_header()
    assert (
        refusal(make_image_renditions, io.BytesIO(content), sniff(content), LIMITS) == "too-large-dimensions"
    )
    assert pixel_work == []


def test_heic_whose_grid_claims_fifty_thousand_pixels_square_is_refused_from_its_header(
    pixel_work: list[str],
) -> None:
    content = phone.huge_grid_heic(50_000)
    assert sniff(content) == HEIC
    assert image_header_size(io.BytesIO(content), HEIC) == (50_000, 50_000)
    assert (
        refusal(make_image_renditions, io.BytesIO(content), sniff(content), LIMITS) == "too-large-dimensions"
    )
    assert pixel_work == []


def test_truncated_avif_is_refused_as_corrupt() -> None:
    content = phone.truncated_avif()
    assert sniff(content) == AVIF
    assert refusal(make_image_renditions, io.BytesIO(content), AVIF, LIMITS) == "corrupt"


def test_heif_whose_image_item_points_outside_the_file_is_refused_as_corrupt() -> None:
    content = phone.heif_item_outside_file()
    assert sniff(content) == HEIC
    assert refusal(make_image_renditions, io.BytesIO(content), HEIC, LIMITS) == "corrupt"
    # The process is unharmed: the next HEIC renders.
    good = phone.heic(media.pattern(320, 240))
    assert make_image_renditions(io.BytesIO(good), HEIC, LIMITS).width == 320


def test_image_within_each_side_but_over_the_pixel_limit_is_refused_as_too_many_pixels() -> None:
    content = media.huge_png_header(8_000, 8_000)
    limits = MediaLimits(max_pixels=50_000_000)
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), limits) == "too-many-pixels"


def test_gif_whose_frame_outgrows_the_screen_its_header_declares_is_refused_as_too_many_pixels() -> None:
    content = media.gif_outgrowing_its_screen(1200, 1000)
    assert struct.unpack_from("<HH", content, 6) == (10, 10)  # the screen passes the header check
    limits = MediaLimits(max_pixels=1_000_000)
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), limits) == "too-many-pixels"


def test_a_decompression_bomb_warning_from_pillow_refuses_the_image_instead_of_being_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pillow checks sizes in places of its own (frames, crops, future decoders); stand in for one that
    # finds four times the declared pixels while loading: over the limit, under twice it.
    original = ImageFile.ImageFile.load

    def finds_more(self):
        Image._decompression_bomb_check((self.size[0] * 4, self.size[1]))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", finds_more)
    limits = MediaLimits(max_pixels=1_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limits.max_pixels)  # as the default settings make it
    content = media.good_jpeg(640, 480)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as a worker runs: a warning that escaped would only be logged
        code = refusal(
            make_image_renditions, io.BytesIO(content), sniff(content), MediaLimits(max_pixels=1_000_000)
        )
    assert code == "too-many-pixels"


def test_truncated_jpeg_is_refused_as_corrupt_and_truncated_loading_stays_off() -> None:
    content = media.truncated_jpeg()
    assert sniff(content) == JPEG
    assert refusal(make_image_renditions, io.BytesIO(content), JPEG, LIMITS) == "corrupt"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_zero_byte_file_is_not_sniffed_and_is_refused_as_empty_when_forced(tmp_path: Path) -> None:
    assert sniff(media.zero_bytes()) is None
    assert refusal(make_image_renditions, io.BytesIO(b""), JPEG, LIMITS) == "empty"
    empty = media.write(tmp_path, "empty.mp4", b"")
    assert refusal(probe_video, str(empty), MP4, LIMITS) == "empty"


@pytest.mark.parametrize("make", [media.text_as_jpg, media.svg, media.zip_file, media.pdf])
def test_text_svg_zip_and_pdf_named_as_media_are_not_sniffed(make) -> None:
    assert sniff(make()[:SNIFF_BYTES]) is None


def test_file_that_is_not_the_format_it_was_sniffed_as_is_corrupt() -> None:
    assert refusal(make_image_renditions, io.BytesIO(media.good_jpeg(64, 48)), PNG, LIMITS) == "corrupt"


@pytest.mark.parametrize(
    ("make", "target"),
    [(media.hls_playlist, "{dir}/real.mp4"), (media.ffconcat_file, "real.mp4")],
    ids=["hls", "ffconcat"],
)
def test_playlist_renamed_mp4_is_not_sniffed_and_forced_through_mov_is_not_followed(
    make, target: str, tmp_path: Path, videos: dict[str, Path]
) -> None:
    # Each list names a valid clip that ffprobe, left to guess the format, would follow (hls through
    # file://, concat through a "safe" relative name) and report as a 1 s video.
    (tmp_path / "real.mp4").write_bytes(videos["mp4"].read_bytes())
    listing = media.write(tmp_path, "clip.mp4", make(target.format(dir=tmp_path)))
    assert sniff(listing.read_bytes()[:SNIFF_BYTES]) is None
    assert refusal(probe_video, str(listing), MP4, LIMITS) == "corrupt"


@pytest.mark.parametrize("demuxer", ["hls", "concat", "image2", None])
def test_video_types_outside_the_demuxer_allow_list_are_never_probed(
    demuxer, videos: dict[str, Path]
) -> None:
    forced = SniffedType("video", "video/mp4", None, demuxer)
    assert refusal(probe_video, str(videos["mp4"]), forced, LIMITS) == "unsupported-format"


def test_audio_only_mp4_is_refused_for_having_no_video_stream(tmp_path: Path) -> None:
    path = media.audio_only_mp4(tmp_path)
    with path.open("rb") as f:
        assert sniff(f.read(SNIFF_BYTES)) == MP4
    assert refusal(probe_video, str(path), MP4, LIMITS) == "no-video-stream"


def test_video_longer_than_two_hours_is_refused_as_too_long(tmp_path: Path) -> None:
    assert refusal(probe_video, str(media.long_video(tmp_path)), MP4, LIMITS) == "too-long"


def test_video_over_a_lowered_duration_limit_is_refused_as_too_long(videos: dict[str, Path]) -> None:
    assert refusal(probe_video, str(videos["mp4"]), MP4, MediaLimits(max_video_seconds=0.5)) == "too-long"


def test_video_frame_over_the_dimension_limit_is_refused(videos: dict[str, Path]) -> None:
    assert (
        refusal(probe_video, str(videos["mp4"]), MP4, MediaLimits(max_dimension=100))
        == "too-large-dimensions"
    )


def test_probe_that_never_finishes_is_killed_and_refused_as_timeout(tmp_path: Path) -> None:
    fifo = tmp_path / "never-written.mp4"
    os.mkfifo(fifo)  # ffprobe blocks opening it: no writer ever comes
    started = time.perf_counter()
    assert refusal(probe_video, str(fifo), MP4, MediaLimits(probe_timeout_seconds=1.0)) == "timeout"
    assert time.perf_counter() - started < 5


def test_ffmpeg_children_run_under_memory_and_cpu_limits(videos: dict[str, Path]) -> None:
    limits = MediaLimits(child_memory_bytes=8 * 1024 * 1024, child_cpu_seconds=7)
    argv = limited(["ffprobe", "x"], limits)
    assert argv[:4] == ["/usr/bin/prlimit", f"--as={8 * 1024 * 1024}", "--cpu=7", "--"] or argv[1:4] == [
        f"--as={8 * 1024 * 1024}", "--cpu=7", "--"]  # fmt: skip
    # 8 MiB of address space is too little for ffprobe to even load: refused, not run unbounded.
    with pytest.raises(MediaRejected):
        probe_video(str(videos["mp4"]), MP4, limits)


@pytest.mark.parametrize(
    "content",
    [media.malformed_exif_jpeg(), media.good_jpeg(320, 240, exif=b"Exif\x00\x00not a tiff header")],
    ids=["entries-past-the-end", "not-tiff"],
)
def test_image_whose_exif_cannot_say_which_way_up_it_goes_is_refused_as_corrupt(content: bytes) -> None:
    # No pytest.warns: Pillow's complaints about the EXIF must not escape (a worker would only log them).
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), LIMITS) == "corrupt"


def test_exif_with_a_tag_of_an_odd_count_is_read_and_the_image_rendered() -> None:
    content = media.good_jpeg(320, 240, exif=media.exif_with_two_resolutions(orientation=6))
    result = make_image_renditions(io.BytesIO(content), sniff(content), LIMITS)
    assert (result.width, result.height) == (240, 320)


def test_gif_with_more_frames_than_the_limit_is_refused_before_any_decoding(pixel_work: list[str]) -> None:
    content = media.too_many_frames_gif()
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), LIMITS) == "too-many-frames"
    assert pixel_work == []


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_each_animated_format_over_a_lowered_frame_limit_is_refused(fmt: str) -> None:
    content = media.animated(fmt, frames=4)
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), MediaLimits(max_frames=3)) == (
        "too-many-frames"
    )
    make_image_renditions(io.BytesIO(content), sniff(content), MediaLimits(max_frames=4))


def test_gif_with_thousands_of_frames_under_the_limit_decodes_only_its_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = media.many_frames_gif(3000)
    visited = []
    original = GifImagePlugin.GifImageFile._seek

    def recording(self, frame, update_image=True):
        visited.append(frame)
        return original(self, frame, update_image)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", recording)
    result = make_image_renditions(io.BytesIO(content), sniff(content), LIMITS)
    assert (result.width, result.height) == (32, 32)
    assert set(visited) == {0}


def test_tiff_with_thousands_of_tags_claiming_a_gigabyte_is_read_in_bounded_memory() -> None:
    # Pillow before 13 kept every tag's claimed bytes (here ~1.1 GB from 120 KB); 13 caps them at the file.
    content = media.tiff_with_thousands_of_overlapping_tags()
    assert len(content) < 130_000
    tracemalloc.start()
    try:
        assert image_header_size(io.BytesIO(content), sniff(content)) == (8, 8)
        result = make_image_renditions(io.BytesIO(content), sniff(content), LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.width, result.height) == (8, 8)
    assert peak < 16 * 1024 * 1024
