"""Hostile files end with the right outcome, and the same worker process goes on to finish a good file."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from models import taskqueue
from models.storage import make_storage
from models.tables import Asset
from tests.processes import running, settings_env, wait_until, worker_command
from tests.workers.media import hostile_media as media
from tests.workers.rendition_support import add_asset, asset, open_webp, remove_committed, rendition_keys
from workers.images import make_image_renditions
from workers.videos import make_video_renditions


def _file(make: Callable[[Path], Path]) -> Callable[[Path], bytes]:
    return lambda directory: make(directory).read_bytes()


def _bytes(make: Callable[[], bytes]) -> Callable[[Path], bytes]:
    return lambda _directory: make()


# (name, asset type, extension, bytes made in a directory, final status, error code)
HOSTILE = [
    ("png-50000x50000", "image", "png", _bytes(media.huge_png_header), "failed", "too-large-dimensions"),
    ("truncated-jpeg", "image", "jpg", _bytes(media.truncated_jpeg), "failed", "corrupt"),
    ("zero-byte-image", "image", "jpg", _bytes(media.zero_bytes), "failed", "empty"),
    ("zero-byte-video", "video", "mp4", _bytes(media.zero_bytes), "failed", "empty"),
    ("text-named-jpg", "image", "jpg", _bytes(media.text_as_jpg), "failed", "unsupported-format"),
    ("svg", "image", "svg", _bytes(media.svg), "failed", "unsupported-format"),
    ("zip", "image", "zip", _bytes(media.zip_file), "failed", "unsupported-format"),
    ("hls-playlist-named-mp4", "video", "mp4", _bytes(media.hls_playlist), "failed", "unsupported-format"),
    ("ffconcat-named-mp4", "video", "mp4", _bytes(media.ffconcat_file), "failed", "unsupported-format"),
    ("audio-only-mp4", "video", "mp4", _file(media.audio_only_mp4), "failed", "no-video-stream"),
    ("video-over-the-limit", "video", "mp4", _file(media.long_video), "failed", "too-long"),
    # Only the first frame is ever decoded, so thousands of frames cost what one costs: refusing the
    # file would protect nothing. Malformed EXIF only loses its orientation, never the upload.
    ("gif-with-3000-frames", "image", "gif", _bytes(media.many_frames_gif), "ready", None),
    ("malformed-exif", "image", "jpg", _bytes(media.malformed_exif_jpeg), "ready", None),
]  # fmt: skip
TASKS = {"image": make_image_renditions, "video": make_video_renditions}
# Pillow warns about the bogus EXIF while reading it; a worker logs that, pytest would raise it.
WARNS = {
    "malformed-exif": [
        pytest.mark.filterwarnings("ignore:Tag data larger than file"),
        pytest.mark.filterwarnings("ignore:Corrupt EXIF data"),
    ]
}


@pytest.mark.parametrize(
    ("type", "ext", "make", "status", "code"),
    [pytest.param(*rest, id=name, marks=WARNS.get(name, ())) for name, *rest in HOSTILE],
)
def test_a_hostile_file_ends_as_expected_and_a_good_file_still_finishes_after_it(
    worker_context, sessions, tmp_path, type, ext, make, status, code
):
    hostile = add_asset(sessions, worker_context.storage, make(tmp_path), type=type, ext=ext)
    good = add_asset(sessions, worker_context.storage, media.good_jpeg(800, 600), ext="jpg")

    assert TASKS[type](hostile) == status
    assert make_image_renditions(good) == "ready"

    row = asset(sessions, hostile)
    assert (row.status, row.error) == (status, code)
    if status == "failed":
        assert (row.thumbnail_key, row.preview_key, row.poster_key) == (None, None, None)
        assert rendition_keys(worker_context.storage, hostile) == set()
        assert worker_context.storage.head(row.storage_key) is not None
    else:
        assert open_webp(worker_context.storage, row.thumbnail_key).size[0] > 0
    assert asset(sessions, good).status == "ready"


@pytest.mark.e2e
def test_one_real_worker_refuses_every_hostile_file_then_finishes_good_ones(settings, engine, tmp_path):
    storage = make_storage(settings)
    committed = sessionmaker(engine, expire_on_commit=False)
    user_id = f"user_hostile_{uuid.uuid4().hex[:8]}"
    expected = {}
    for _name, type, ext, make, status, code in HOSTILE:
        asset_id = add_asset(committed, storage, make(tmp_path), type=type, ext=ext, user_id=user_id)
        expected[asset_id] = (type, status, code)
    small_mp4_bytes = media.small_mp4(tmp_path, 1.0, "320x240").read_bytes()
    good_image = add_asset(committed, storage, media.good_jpeg(1200, 900), ext="jpg", user_id=user_id)
    good_video = add_asset(committed, storage, small_mp4_bytes, type="video", ext="mp4", user_id=user_id)
    expected |= {good_video: ("video", "ready", None), good_image: ("image", "ready", None)}
    ids = [uuid.UUID(asset_id) for asset_id in expected]
    try:
        with running(worker_command("images,videos"), settings_env(settings), tmp_path / "worker.log"):
            client = taskqueue.make_client(settings)
            for asset_id, (type, _status, _code) in expected.items():
                name = taskqueue.MAKE_IMAGE_RENDITIONS if type == "image" else taskqueue.MAKE_VIDEO_RENDITIONS
                taskqueue.send(client, name, asset_id)

            def all_final():
                with committed() as session:
                    rows = session.execute(
                        select(Asset.id, Asset.status, Asset.error).where(Asset.id.in_(ids))
                    )
                    outcomes = {str(row.id): (row.status, row.error) for row in rows}
                finished = all(status in ("ready", "failed") for status, _ in outcomes.values())
                return outcomes if finished else None

            outcomes = wait_until(all_final, timeout=90, interval=0.25)
        assert outcomes == {asset_id: (status, code) for asset_id, (_, status, code) in expected.items()}
        assert open_webp(storage, asset(committed, good_image).thumbnail_key).size == (400, 300)
        assert open_webp(storage, asset(committed, good_video).poster_key).size == (320, 240)
    finally:
        remove_committed(engine, storage, list(expected), user_id)
