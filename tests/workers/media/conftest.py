"""Media generated once per test session: small clips in every accepted container."""

from pathlib import Path

import pytest

from tests.workers.media import hostile_media as media

VP8 = ("-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k")
MPEG2 = ("-c:v", "mpeg2video", "-b:v", "500k")
MPEG4 = ("-c:v", "mpeg4", "-q:v", "5")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def videos(media_dir: Path) -> dict[str, Path]:
    """One short 160x120 clip per accepted container, keyed by a short name."""
    return {
        "mp4": media.small_mp4(media_dir),
        "mov": media.video(media_dir, "clip.mov", container=("-f", "mov")),
        "webm": media.video(media_dir, "clip.webm", codec=VP8),
        "mpeg": media.video(media_dir, "clip.mpg", codec=MPEG2, container=("-f", "mpeg")),
        "mpegts": media.video(media_dir, "clip.ts", container=("-f", "mpegts")),
        "avi": media.video(media_dir, "clip.avi", codec=MPEG4),
    }


@pytest.fixture(scope="session")
def wide_mp4(media_dir: Path) -> Path:
    return media.video(media_dir, "wide.mp4", seconds=2, size="640x360")


@pytest.fixture(scope="session")
def rotated_mp4(media_dir: Path) -> Path:
    return media.rotated_mp4(media_dir, 90)
