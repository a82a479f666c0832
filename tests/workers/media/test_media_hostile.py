"""Hostile inputs: each is refused with its code, quickly, without following or decoding anything."""

import io
import os
import resource
import time
from pathlib import Path

import pytest
from PIL import ImageFile

from tests.workers.media import hostile_media as media
from workers.media.children import limited
from workers.media.errors import MediaRejected
from workers.media.images import make_image_renditions
from workers.media.limits import MediaLimits
from workers.media.sniff import JPEG, MP4, PNG, SNIFF_BYTES, SniffedType, sniff
from workers.media.video import probe_video

LIMITS = MediaLimits()


def refusal(call, *args) -> str:
    with pytest.raises(MediaRejected) as refused:
        call(*args)
    return refused.value.code


def test_png_declaring_fifty_thousand_pixels_square_is_refused_as_too_large_without_decoding() -> None:
    content = media.huge_png_header()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    assert (
        refusal(make_image_renditions, io.BytesIO(content), sniff(content), LIMITS) == "too-large-dimensions"
    )
    assert time.perf_counter() - started < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: nothing allocated


def test_image_within_each_side_but_over_the_pixel_limit_is_refused_as_too_many_pixels() -> None:
    content = media.huge_png_header(8_000, 8_000)
    limits = MediaLimits(max_pixels=50_000_000)
    assert refusal(make_image_renditions, io.BytesIO(content), sniff(content), limits) == "too-many-pixels"


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


def test_malformed_exif_is_ignored_and_the_image_still_gets_renditions() -> None:
    content = media.malformed_exif_jpeg(320, 240)
    # Pillow skips the bad tags with a UserWarning (a log line in the worker, an error under pytest's
    # filter): record it as expected, so the run matches production, and check it was the EXIF.
    with pytest.warns(UserWarning, match="EXIF|Tag data"):
        result = make_image_renditions(io.BytesIO(content), sniff(content), LIMITS)
    assert (result.width, result.height) == (320, 240)


def test_gif_with_thousands_of_frames_is_rendered_from_its_first_frame_quickly() -> None:
    content = media.many_frames_gif(3000)
    started = time.perf_counter()
    result = make_image_renditions(io.BytesIO(content), sniff(content), LIMITS)
    assert time.perf_counter() - started < 0.5
    assert (result.width, result.height) == (32, 32)
