"""Bounds on what the media functions will decode, probe or run (SPEC §4), passed in by the caller."""

from dataclasses import dataclass

from models.settings import Settings

MIB = 1024 * 1024
# Address space ffmpeg maps without making it resident (codec libraries, thread pools): it does not even
# start under 384 MiB, while a 4K poster frame peaks at ~80 MiB resident. Its RLIMIT_AS is the task
# process ceiling plus this.
FFMPEG_MAPPED_MB = 1024


@dataclass(frozen=True)
class MediaLimits:
    """Per-call limits; the defaults are SPEC §4's."""

    # Width and height must each be 1..max_dimension (images and video frames).
    max_dimension: int = 10_000
    # Bound on decoded pixels, checked from the header before any decoding (decompression bombs).
    max_pixels: int = 100_000_000
    max_video_seconds: float = 7200.0
    # Frames of an animated GIF, WebP or PNG. Only the first is ever decoded here, but the original is what
    # the canvas plays back; the count is read from the block structure, stopping past the bound.
    max_frames: int = 10_000
    probe_timeout_seconds: float = 20.0
    ffmpeg_timeout_seconds: float = 60.0
    # RLIMIT_AS and RLIMIT_CPU for every ffmpeg/ffprobe child.
    child_memory_bytes: int = 1_536 * 1024 * 1024
    child_cpu_seconds: int = 120


def media_limits(settings: Settings) -> MediaLimits:
    """SPEC §4's bounds as this deployment configures them."""
    return MediaLimits(
        max_dimension=settings.max_dimension,
        max_pixels=settings.max_image_pixels,
        max_video_seconds=settings.max_video_seconds,
        child_memory_bytes=(settings.worker_memory_limit_mb + FFMPEG_MAPPED_MB) * MIB,
    )
