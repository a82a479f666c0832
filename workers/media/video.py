"""Probe a video and take its poster frame with ffprobe/ffmpeg, bounded and confined to one file."""

import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction

import ffmpeg
from PIL import Image

from workers.media.children import run_limited, stderr_tail
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.placeholder import thumbhash
from workers.media.sniff import VIDEO_DEMUXERS, SniffedType, check_dimensions
from workers.media.webp import encode_webp

POSTER_SIDE = 400
POSTER_AT = 0.10  # fraction of the duration where the poster is taken
# ffprobe's color_transfer names of the HDR transfers: PQ (HDR10, Dolby Vision base) and HLG (phones).
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
# Only these values are written into the tone-mapping filter; anything else falls back to BT.2020's.
_ZSCALE_PRIMARIES = frozenset({"bt709", "bt2020", "smpte431", "smpte432"})
_ZSCALE_MATRICES = frozenset({"bt709", "bt2020nc", "bt2020c"})
_ZSCALE_RANGES = frozenset({"tv", "pc"})
# BT.2408's HDR reference white, mapped to SDR white: a scene's diffuse white keeps its SDR brightness.
REFERENCE_WHITE_NITS = 203
# Mobius keeps the signal linear up to 70 % of reference white and rolls off above it, so speculars up
# to the HDR peak are compressed into SDR instead of clipped (bench/RESULTS.md compares the choices).
_TONEMAP = "tonemap=mobius:param=0.7:desat=0"


@dataclass(frozen=True)
class VideoInfo:
    duration: float
    width: int  # display size: sample aspect ratio and rotation applied
    height: int
    codec: str
    frame_rate: float | None
    rotation: int  # clockwise degrees applied for display: 0, 90, 180 or 270
    stream_index: int = 0  # the container's index of the video stream described
    # Colour as ffprobe names it (color_transfer, color_primaries, color_space, color_range), or None.
    transfer: str | None = None
    primaries: str | None = None
    matrix: str | None = None
    colour_range: str | None = None

    @property
    def hdr(self) -> bool:
        """Whether frames are PQ or HLG, which need tone mapping to look right in SDR."""
        return self.transfer in HDR_TRANSFERS


@dataclass(frozen=True)
class Poster:
    webp: bytes
    placeholder: str  # base64 ThumbHash of the poster frame


def _demuxer(sniffed: SniffedType) -> str:
    # Never let ffmpeg guess: probing would also accept playlists (hls) and file lists (concat).
    if sniffed.kind != "video" or sniffed.demuxer is None or sniffed.demuxer not in VIDEO_DEMUXERS:
        raise MediaRejected("unsupported-format", f"{sniffed.mime_type} is not a video we demux")
    return sniffed.demuxer


def _file_url(path: str) -> str:
    # "file:" makes the protocol explicit: a name like "concat:a|b" or "-i" is then just a file name.
    return "file:" + os.path.abspath(path)


def _require_content(path: str) -> None:
    stat = os.stat(path)
    if stat.st_size == 0 and os.path.isfile(path):
        raise MediaRejected("empty")


def probe_command(path: str, sniffed: SniffedType) -> list[str]:
    """The ffprobe argv: forced demuxer, file protocol only, JSON of format and streams."""
    # ffmpeg-python's probe() runs ffprobe itself with no timeout or limits, so the argv is built here.
    return [
        "ffprobe", "-v", "error", "-hide_banner", "-of", "json", "-show_format", "-show_streams",
        "-protocol_whitelist", "file", "-f", _demuxer(sniffed), "-i", _file_url(path),
    ]  # fmt: skip


def probe_video(path: str, sniffed: SniffedType, limits: MediaLimits) -> VideoInfo:
    """Duration, display size, codec, frame rate, rotation and transfer, refusing what breaks the limits."""
    argv = probe_command(path, sniffed)
    _require_content(path)
    completed = run_limited(argv, limits, limits.probe_timeout_seconds)
    if completed.returncode != 0:
        raise MediaRejected("corrupt", stderr_tail(completed))
    try:
        report = json.loads(completed.stdout)
    except ValueError as error:
        raise MediaRejected("corrupt", "ffprobe printed no JSON") from error
    return video_info(report, limits)


def video_info(report: dict, limits: MediaLimits) -> VideoInfo:
    """VideoInfo from ffprobe's JSON report, checked against limits."""
    streams = [
        s for s in report.get("streams", [])
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]  # fmt: skip
    if not streams:
        raise MediaRejected("no-video-stream")
    stream = streams[0]
    # The coded frame is what a decoder allocates, whatever the sample aspect ratio stretches it to.
    check_dimensions(int(stream.get("width") or 0), int(stream.get("height") or 0), limits)
    width, height = _display_size(stream)
    rotation = _rotation(stream)
    if rotation in (90, 270):
        width, height = height, width
    duration = _number(report.get("format", {}).get("duration")) or _number(stream.get("duration"))
    if not duration or duration <= 0:
        raise MediaRejected("corrupt", "no duration")
    if duration > limits.max_video_seconds:
        raise MediaRejected("too-long", f"{duration:.0f} s exceeds {limits.max_video_seconds:g} s")
    return VideoInfo(
        duration=duration,
        width=width,
        height=height,
        codec=str(stream.get("codec_name") or "unknown"),
        frame_rate=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
        rotation=rotation,
        stream_index=int(stream.get("index", 0)),
        transfer=_name(stream.get("color_transfer")),
        primaries=_name(stream.get("color_primaries")),
        matrix=_name(stream.get("color_space")),
        colour_range=_name(stream.get("color_range")),
    )


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and value not in ("", "unknown", "reserved") else None


def _number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rate(value: object) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def _display_size(stream: dict) -> tuple[int, int]:
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    try:
        aspect = Fraction(str(stream.get("sample_aspect_ratio", "1:1")).replace(":", "/"))
    except (ValueError, ZeroDivisionError):
        aspect = Fraction(1)
    if aspect > 0 and aspect != 1:
        width = max(1, round(width * aspect))
    return width, height


def _rotation(stream: dict) -> int:
    # A display matrix's "rotation" is counter-clockwise (ffmpeg negates it to autorotate);
    # the legacy "rotate" tag is clockwise.
    for side_data in stream.get("side_data_list", []):
        degrees = _number(side_data.get("rotation"))
        if degrees is not None:
            return round(-degrees / 90) % 4 * 90
    degrees = _number(stream.get("tags", {}).get("rotate"))
    return round(degrees / 90) % 4 * 90 if degrees is not None else 0


def poster_size(info: VideoInfo) -> tuple[int, int]:
    """The poster's size: longest side POSTER_SIDE, never larger than the video."""
    scale = min(1.0, POSTER_SIDE / max(info.width, info.height))
    return max(1, round(info.width * scale)), max(1, round(info.height * scale))


def poster_command(path: str, sniffed: SniffedType, info: VideoInfo, at: float) -> list[str]:
    """ffmpeg argv writing one rgb24 frame near `at` seconds to stdout, scaled to poster_size."""
    width, height = poster_size(info)
    # Input-side seek: the demuxer jumps to the keyframe before `at`, so at most one GOP is decoded
    # (not everything up to `at`, as an output-side -ss would). It stays accurate rather than taking
    # that keyframe: short generated clips often have a single keyframe, at 0 s.
    # ffmpeg autorotates before the scale filter, so the display size is what we scale to.
    seek = {"ss": f"{at:.3f}"} if at > 0 else {}
    filters = f"scale={width}:{height}:flags=lanczos,setsar=1"
    if info.hdr:
        filters += "," + tone_map_filter(info)
    source = ffmpeg.input(_file_url(path), f=_demuxer(sniffed), protocol_whitelist="file", threads=1, **seek)
    output = source.output(
        "pipe:",
        map=f"0:{info.stream_index}",
        vf=filters,
        vframes=1,
        format="rawvideo",
        pix_fmt="rgb24",
        threads=1,
        an=None,
        sn=None,
        dn=None,
    )
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-filter_threads", "1", *output.get_args()]


def tone_map_filter(info: VideoInfo) -> str:
    """zscale + tonemap from the video's PQ/HLG BT.2020 (as probed) to SDR BT.709 RGB."""
    # Run after the scale to poster size: the float conversions then cost a poster's pixels, not 4K's.
    # 4:4:4 first: zscale refuses subsampled frames of odd size, and posters often have an odd side.
    primaries = info.primaries if info.primaries in _ZSCALE_PRIMARIES else "bt2020"
    matrix = info.matrix if info.matrix in _ZSCALE_MATRICES else "bt2020nc"
    colour_range = info.colour_range if info.colour_range in _ZSCALE_RANGES else "tv"
    return ",".join((
        "format=yuv444p16le",
        f"zscale=tin={info.transfer}:pin={primaries}:min={matrix}:rin={colour_range}"
        f":t=linear:npl={REFERENCE_WHITE_NITS}",
        "format=gbrpf32le",
        "zscale=p=bt709",
        _TONEMAP,
        "zscale=t=bt709:m=bt709:r=pc",
        "format=gbrp",
    ))  # fmt: skip


def poster_time(duration: float) -> float:
    """About 10 % in, and never past the end."""
    return max(0.0, min(duration * POSTER_AT, duration - 0.001))


def make_poster(
    path: str, sniffed: SniffedType, info: VideoInfo, limits: MediaLimits, at: float | None = None
) -> Poster:
    """WebP poster (longest side 400) of the frame near `at` (default poster_time), else the first frame."""
    _require_content(path)
    size = poster_size(info)
    at = poster_time(info.duration) if at is None else max(0.0, min(at, info.duration))
    frame = _frame(path, sniffed, info, at, limits, size) if at > 0 else None
    if frame is None:
        frame = _frame(path, sniffed, info, 0.0, limits, size)
    if frame is None:
        raise MediaRejected("corrupt", "no frame could be decoded")
    return Poster(encode_webp(frame), thumbhash(frame))


def _frame(
    path: str, sniffed: SniffedType, info: VideoInfo, at: float, limits: MediaLimits, size: tuple[int, int]
) -> Image.Image | None:
    argv = poster_command(path, sniffed, info, at)
    completed = run_limited(argv, limits, limits.ffmpeg_timeout_seconds)
    expected = size[0] * size[1] * 3
    if completed.returncode != 0 or len(completed.stdout) < expected:
        return None
    return Image.frombytes("RGB", size, completed.stdout[:expected])
