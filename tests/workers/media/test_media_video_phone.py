"""Phone video: HDR posters tone-mapped to SDR, display-matrix rotation, limits on the coded frame."""

import io
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.workers.media import hostile_media as media
from tests.workers.media import phone_media as phone
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import MP4
from workers.media.video import make_poster, poster_command, probe_video, video_info

LIMITS = MediaLimits()
# Tone mapping is not the inverse of the conversion that made the clip: mobius rolls off the top 30 %
# below reference white, and zscale's and swscale's YUV->RGB round differently. Measured gaps are ~4
# levels of mean luma and ~7 of mean saturation; an untone-mapped decode loses ~90 of saturation.
LUMA_TOLERANCE = 8
SATURATION_TOLERANCE = 12
WASHED_OUT_BY = 60


def luma_and_saturation(webp: bytes) -> tuple[float, float]:
    img = Image.open(io.BytesIO(webp), formats=["WEBP"]).convert("RGB")
    rgb = np.asarray(img, dtype=float)
    luma = (0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]).mean()
    return luma, np.asarray(img.convert("HSV"), dtype=float)[..., 1].mean()


def poster_stats(path: Path, **overrides: object) -> tuple[float, float]:
    info = probe_video(str(path), MP4, LIMITS)
    info = replace(info, **overrides)
    return luma_and_saturation(make_poster(str(path), MP4, info, LIMITS).webp)


@pytest.fixture(scope="module")
def sdr_and_hdr(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("hdr")
    return {
        "sdr": phone.sdr_clip(directory),
        "hlg": phone.hdr_clip(directory, "arib-std-b67"),
        "pq": phone.hdr_clip(directory, "smpte2084"),
    }


@pytest.mark.parametrize(
    ("name", "transfer"), [("hlg", "arib-std-b67"), ("pq", "smpte2084"), ("sdr", "bt709")]
)
def test_the_probe_reports_the_transfer_and_whether_it_is_hdr(
    name: str, transfer: str, sdr_and_hdr: dict[str, Path]
) -> None:
    info = probe_video(str(sdr_and_hdr[name]), MP4, LIMITS)
    assert info.transfer == transfer
    assert info.hdr is (name != "sdr")
    if name != "sdr":
        assert (info.primaries, info.matrix, info.codec) == ("bt2020", "bt2020nc", "hevc")


@pytest.mark.parametrize("name", ["hlg", "pq"])
def test_hdr_poster_matches_the_sdr_sources_own_poster_where_an_untone_mapped_one_is_washed_out(
    name: str, sdr_and_hdr: dict[str, Path]
) -> None:
    sdr_luma, sdr_saturation = poster_stats(sdr_and_hdr["sdr"])
    luma, saturation = poster_stats(sdr_and_hdr[name])
    assert abs(luma - sdr_luma) <= LUMA_TOLERANCE, (luma, sdr_luma)
    assert abs(saturation - sdr_saturation) <= SATURATION_TOLERANCE, (saturation, sdr_saturation)
    _, raw_saturation = poster_stats(sdr_and_hdr[name], transfer=None)  # decoded as if it were SDR
    assert sdr_saturation - raw_saturation >= WASHED_OUT_BY, (raw_saturation, sdr_saturation)


def test_hdr_poster_of_an_odd_size_is_made(sdr_and_hdr: dict[str, Path]) -> None:
    # 4:2:0 frames of an odd height are what zscale refuses; a 16:9 poster of 400x225 is one.
    info = replace(probe_video(str(sdr_and_hdr["hlg"]), MP4, LIMITS), width=400, height=225)
    poster = Image.open(io.BytesIO(make_poster(str(sdr_and_hdr["hlg"]), MP4, info, LIMITS).webp))
    assert poster.size == (400, 225)


def test_only_hdr_posters_go_through_the_tone_mapping_filters(sdr_and_hdr: dict[str, Path]) -> None:
    for name in ("sdr", "hlg"):
        info = probe_video(str(sdr_and_hdr[name]), MP4, LIMITS)
        argv = " ".join(poster_command(str(sdr_and_hdr[name]), MP4, info, 0.1))
        assert ("tonemap=" in argv and "zscale=tin=arib-std-b67" in argv) is (name == "hlg")


def test_tone_mapping_runs_under_the_same_child_limits(sdr_and_hdr: dict[str, Path]) -> None:
    info = probe_video(str(sdr_and_hdr["hlg"]), MP4, LIMITS)
    with pytest.raises(MediaRejected):
        make_poster(str(sdr_and_hdr["hlg"]), MP4, info, MediaLimits(child_memory_bytes=8 * 1024 * 1024))


@pytest.fixture(scope="module")
def red_above_blue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("matrix") / "red-above-blue.mp4"
    media._ffmpeg(
        "-f", "lavfi", "-i", "color=c=red:s=160x60:d=1,pad=160:120:0:0:blue",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


# Where the top edge of the stored picture lands once turned clockwise.
TOP_LANDS = {90: "right", 180: "bottom", 270: "left"}
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_display_matrix_in_the_track_header_sets_the_size_and_turns_the_poster(
    degrees: int, red_above_blue: Path
) -> None:
    path = phone.matrix_rotated(red_above_blue, degrees)
    tags = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream_tags", "-of", "csv", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "rotate" not in tags  # the matrix alone says which way up
    info = probe_video(str(path), MP4, LIMITS)
    assert info.rotation == degrees
    assert (info.width, info.height) == ((120, 160) if degrees in (90, 270) else (160, 120))
    poster = Image.open(io.BytesIO(make_poster(str(path), MP4, info, LIMITS).webp)).convert("RGB")
    assert poster.size == (info.width, info.height)
    width, height = poster.size
    sides = {"top": (width // 2, 3), "bottom": (width // 2, height - 4), "left": (3, height // 2),
             "right": (width - 4, height // 2)}  # fmt: skip
    red, blue = (
        poster.getpixel(sides[TOP_LANDS[degrees]]),
        poster.getpixel(sides[OPPOSITE[TOP_LANDS[degrees]]]),
    )
    assert red[0] > 200 and red[2] < 60 and blue[2] > 200 and blue[0] < 60, (red, blue)


def _report(width: int, height: int, sar: str) -> dict:
    stream = {"index": 0, "codec_type": "video", "codec_name": "h264", "width": width, "height": height,
              "sample_aspect_ratio": sar, "avg_frame_rate": "25/1"}  # fmt: skip
    return {"streams": [stream], "format": {"duration": "1.0"}}


def test_a_coded_frame_over_the_limit_is_refused_whatever_its_sample_aspect_ratio() -> None:
    with pytest.raises(MediaRejected) as refused:
        video_info(_report(16_000, 4_000, "1:4"), LIMITS)
    assert refused.value.code == "too-large-dimensions"


def test_the_display_size_with_its_sample_aspect_ratio_is_still_reported() -> None:
    info = video_info(_report(8_000, 4_000, "1:2"), LIMITS)
    assert (info.width, info.height) == (4_000, 4_000)


def test_a_real_anamorphic_file_is_checked_by_its_coded_width(tmp_path: Path) -> None:
    path = media.video(
        tmp_path, "anamorphic.mp4", size="320x60",
        codec=("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-vf", "setsar=1/4"),
    )  # fmt: skip
    assert probe_video(str(path), MP4, MediaLimits(max_dimension=400)).width == 80
    with pytest.raises(MediaRejected) as refused:
        probe_video(str(path), MP4, MediaLimits(max_dimension=200))
    assert refused.value.code == "too-large-dimensions"
