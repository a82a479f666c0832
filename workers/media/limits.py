"""Bounds on what the media functions will decode, probe or run (docs/media.md), passed in by the caller."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    """Per-call limits; the defaults are the documented ones (docs/media.md)."""

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
