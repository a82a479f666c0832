"""Bounds on what the media functions will decode, probe or run (SPEC §4), passed in by the caller."""

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaLimits:
    """Per-call limits; the defaults are SPEC §4's."""

    # Width and height must each be 1..max_dimension (images and video frames).
    max_dimension: int = 10_000
    # Bound on decoded pixels, checked from the header before any decoding (decompression bombs).
    max_pixels: int = 100_000_000
    max_video_seconds: float = 7200.0
    # Not enforced for images: only the first frame of an animation is ever decoded, and counting a
    # GIF's frames means walking every frame, so a many-frame file costs what a one-frame file costs.
    # Kept so a future animated rendition has its bound in the same place.
    max_frames: int = 10_000
    probe_timeout_seconds: float = 20.0
    ffmpeg_timeout_seconds: float = 60.0
    # RLIMIT_AS and RLIMIT_CPU for every ffmpeg/ffprobe child.
    child_memory_bytes: int = 1_536 * 1024 * 1024
    child_cpu_seconds: int = 120
