"""probe_video() and make_poster() against real ffprobe/ffmpeg on generated clips."""

import base64
import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tests.workers.media import hostile_media as media
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES, SniffedType, sniff
from workers.media.video import VideoInfo, make_poster, poster_command, poster_time, probe_video

LIMITS = MediaLimits()
CODECS = {"mp4": "h264", "mov": "h264", "webm": "vp8", "mpeg": "mpeg2video", "mpegts": "h264", "avi": "mpeg4"}


def sniffed(path: Path) -> SniffedType:
    with path.open("rb") as f:
        result = sniff(f.read(SNIFF_BYTES))
    assert result is not None
    return result


def poster_image(webp: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(webp), formats=["WEBP"])
    img.load()
    return img


@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_container_is_probed_for_duration_size_codec_and_rate(
    name: str, videos: dict[str, Path]
) -> None:
    info = probe_video(str(videos[name]), sniffed(videos[name]), LIMITS)
    assert (info.width, info.height, info.codec, info.rotation) == (160, 120, CODECS[name], 0)
    assert info.duration == pytest.approx(1.0, abs=0.15)
    assert info.frame_rate == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_container_gets_a_webp_poster_at_the_videos_own_size(name: str, videos: dict[str, Path]) -> None:
    path = videos[name]
    info = probe_video(str(path), sniffed(path), LIMITS)
    poster = make_poster(str(path), sniffed(path), info, LIMITS).webp
    assert poster[:4] == b"RIFF" and poster[8:12] == b"WEBP"
    assert poster_image(poster).size == (160, 120)  # never upscaled


def test_the_poster_carries_a_placeholder_of_its_frame(wide_mp4: Path) -> None:
    info = probe_video(str(wide_mp4), sniffed(wide_mp4), LIMITS)
    poster = make_poster(str(wide_mp4), sniffed(wide_mp4), info, LIMITS)
    assert 20 <= len(poster.placeholder) <= 128
    assert base64.b64decode(poster.placeholder)


def test_poster_of_a_wide_video_has_a_longest_side_of_400(wide_mp4: Path) -> None:
    info = probe_video(str(wide_mp4), sniffed(wide_mp4), LIMITS)
    assert poster_image(make_poster(str(wide_mp4), sniffed(wide_mp4), info, LIMITS).webp).size == (400, 225)


def test_rotated_video_reports_its_rotation_and_display_dimensions(rotated_mp4: Path) -> None:
    info = probe_video(str(rotated_mp4), sniffed(rotated_mp4), LIMITS)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (120, 160)


def test_rotated_video_poster_is_upright_portrait(rotated_mp4: Path) -> None:
    info = probe_video(str(rotated_mp4), sniffed(rotated_mp4), LIMITS)
    poster = poster_image(make_poster(str(rotated_mp4), sniffed(rotated_mp4), info, LIMITS).webp)
    assert poster.size == (120, 160)


@pytest.fixture(scope="module")
def red_above_blue_turned(media_dir: Path) -> dict[int, Path]:
    """A clip red above blue, stored unturned with a display matrix for each quarter turn (by tag)."""
    plain = media_dir / "red-above-blue.mp4"
    media._ffmpeg(
        "-f", "lavfi", "-i", "color=c=red:s=160x60:d=1,pad=160:120:0:0:blue",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(plain),
    )  # fmt: skip
    turned = {}
    for tag in (90, 180, 270):
        turned[tag] = media_dir / f"red-above-blue-{tag}.mp4"
        media._ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", f"rotate={tag}", str(turned[tag]))
    return turned


# Where the picture's top edge lands when it is turned clockwise by VideoInfo.rotation degrees.
TOP_LANDS = {90: "right", 180: "bottom", 270: "left"}
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


@pytest.mark.parametrize("tag", [90, 180, 270])
def test_poster_of_a_turned_video_is_turned_the_way_its_recorded_rotation_says(
    tag: int, red_above_blue_turned: dict[int, Path]
) -> None:
    path = red_above_blue_turned[tag]
    info = probe_video(str(path), sniffed(path), LIMITS)
    poster = poster_image(make_poster(str(path), sniffed(path), info, LIMITS).webp).convert("RGB")
    width, height = poster.size
    sides = {"top": (width // 2, 3), "bottom": (width // 2, height - 4), "left": (3, height // 2),
             "right": (width - 4, height // 2)}  # fmt: skip
    red_side = TOP_LANDS[info.rotation]
    red, blue = poster.getpixel(sides[red_side]), poster.getpixel(sides[OPPOSITE[red_side]])
    assert red[0] > 200 and red[2] < 60, (info.rotation, red_side, red)
    assert blue[2] > 200 and blue[0] < 60, (info.rotation, red_side, blue)
    assert (width, height) == ((120, 160) if info.rotation in (90, 270) else (160, 120))


@pytest.fixture(scope="module")
def red_then_blue(media_dir: Path) -> Path:
    """10 s: red for the first 0.5 s, then blue; a keyframe every 0.5 s."""
    path = media_dir / "red-then-blue.mp4"
    media._ffmpeg(
        "-f", "lavfi", "-i", "color=c=red:s=64x64:r=10:d=0.5",
        "-f", "lavfi", "-i", "color=c=blue:s=64x64:r=10:d=9.5",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def _colour(webp: bytes) -> tuple[int, int, int]:
    return poster_image(webp).convert("RGB").getpixel((32, 32))


def test_poster_is_taken_about_ten_percent_in(red_then_blue: Path) -> None:
    info = probe_video(str(red_then_blue), sniffed(red_then_blue), LIMITS)
    assert poster_time(info.duration) == pytest.approx(1.0, abs=0.05)
    r, _, b = _colour(make_poster(str(red_then_blue), sniffed(red_then_blue), info, LIMITS).webp)
    assert b > 200 and r < 60


def test_poster_falls_back_to_the_first_frame_when_the_seek_finds_nothing(red_then_blue: Path) -> None:
    info = probe_video(str(red_then_blue), sniffed(red_then_blue), LIMITS)
    claims_longer = replace(info, duration=500.0)  # 10 % is 50 s: past the last frame
    r, _, b = _colour(make_poster(str(red_then_blue), sniffed(red_then_blue), claims_longer, LIMITS).webp)
    assert r > 200 and b < 60


def test_poster_time_is_never_past_the_end() -> None:
    assert poster_time(0.002) < 0.002
    assert poster_time(7200) == pytest.approx(720)


def test_poster_command_forces_the_demuxer_seeks_on_input_and_confines_protocols(tmp_path: Path) -> None:
    info = VideoInfo(duration=100, width=640, height=360, codec="h264", frame_rate=25, rotation=0)
    argv = poster_command(
        str(tmp_path / "clip.mp4"), sniff(b"\x00\x00\x00\x18ftypisom" + bytes(12)), info, 10.0
    )
    source = argv.index("-i")
    before = argv[:source]
    assert argv[0] == "ffmpeg" and "-nostdin" in argv
    assert before[before.index("-f") + 1] == "mov"
    assert before[before.index("-protocol_whitelist") + 1] == "file"
    assert before[before.index("-ss") + 1] == "10.000"  # input-side: before -i
    assert argv[source + 1] == f"file:{tmp_path / 'clip.mp4'}"
    assert argv[argv.index("-threads", source) + 1] == "1"
