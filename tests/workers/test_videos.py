"""The video task: ffprobe measurements and a WebP poster, from a temp copy that never outlives the task."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from core import taskqueue
from tests.workers.media.hostile_media import rotated_mp4, small_mp4
from tests.workers.rendition_support import add_asset, asset, open_webp, rendition_keys
from workers.videos import render_video_asset


@pytest.fixture
def temp_dirs(monkeypatch):
    """The paths of every temporary directory created while the test runs."""
    created, original = [], tempfile.TemporaryDirectory

    def recording(*args, **kwargs):
        directory = original(*args, **kwargs)
        created.append(Path(directory.name))
        return directory

    monkeypatch.setattr(tempfile, "TemporaryDirectory", recording)
    return created


def test_an_mp4_is_measured_and_gets_a_400px_poster_as_its_thumbnail(worker_context, sessions, tmp_path):
    data = small_mp4(tmp_path, seconds=2, size="640x360").read_bytes()
    asset_id = add_asset(sessions, worker_context.storage, data, type="video", ext="mp4")

    assert render_video_asset(asset_id) == "ready"

    row = asset(sessions, asset_id)
    assert (row.status, row.width, row.height, row.codec) == ("ready", 640, 360, "h264")
    assert row.duration == pytest.approx(2.0, abs=0.2)
    assert row.frame_rate == pytest.approx(10.0)
    assert open_webp(worker_context.storage, row.poster_key).size == (400, 225)
    assert row.thumbnail_key == row.poster_key
    assert rendition_keys(worker_context.storage, asset_id) == {row.poster_key}
    assert render_video_asset.name == taskqueue.MAKE_VIDEO_RENDITIONS


def test_a_rotated_video_records_its_display_size(worker_context, sessions, tmp_path):
    data = rotated_mp4(tmp_path, 90).read_bytes()
    asset_id = add_asset(sessions, worker_context.storage, data, type="video", ext="mp4")

    render_video_asset(asset_id)

    row = asset(sessions, asset_id)
    assert (row.width, row.height) == (120, 160)
    assert open_webp(worker_context.storage, row.poster_key).size == (120, 160)


@pytest.mark.parametrize(("content", "status"), [("video", "ready"), ("truncated video", "failed")])
def test_the_downloaded_original_is_removed_whatever_the_outcome(
    worker_context, sessions, tmp_path, temp_dirs, content, status
):
    data = small_mp4(tmp_path).read_bytes()
    data = data if content == "video" else data[:2000]
    asset_id = add_asset(sessions, worker_context.storage, data, type="video", ext="mp4")

    assert render_video_asset(asset_id) == status

    assert temp_dirs
    assert not any(directory.exists() for directory in temp_dirs)
    assert asset(sessions, asset_id).error in (None, "corrupt")
