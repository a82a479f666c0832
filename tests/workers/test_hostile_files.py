"""Hostile files fail with their own code, and the same worker process goes on to finish good files."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core import taskqueue
from models.storage import make_storage
from models.tables import Asset
from tests.processes import pool_children, running, settings_env, wait_until, worker_command
from tests.workers.media import hostile_media as media
from tests.workers.rendition_support import add_asset, asset, open_webp, remove_committed, rendition_keys
from workers.images import render_image_asset
from workers.videos import render_video_asset


def _file(make: Callable[[Path], Path]) -> Callable[[Path], bytes]:
    return lambda directory: make(directory).read_bytes()


def _bytes(make: Callable[[], bytes]) -> Callable[[Path], bytes]:
    return lambda _directory: make()


# (name, asset type, extension, bytes made in a directory, the error code it must fail with)
HOSTILE = [
    ("png-50000x50000", "image", "png", _bytes(media.huge_png_header), "too-large-dimensions"),
    ("truncated-jpeg", "image", "jpg", _bytes(media.truncated_jpeg), "corrupt"),
    ("zero-byte-image", "image", "jpg", _bytes(media.zero_bytes), "empty"),
    ("zero-byte-video", "video", "mp4", _bytes(media.zero_bytes), "empty"),
    ("text-named-jpg", "image", "jpg", _bytes(media.text_as_jpg), "unsupported-format"),
    ("svg", "image", "svg", _bytes(media.svg), "unsupported-format"),
    ("zip", "image", "zip", _bytes(media.zip_file), "unsupported-format"),
    ("hls-playlist-named-mp4", "video", "mp4", _bytes(media.hls_playlist), "unsupported-format"),
    ("ffconcat-named-mp4", "video", "mp4", _bytes(media.ffconcat_file), "unsupported-format"),
    ("audio-only-mp4", "video", "mp4", _file(media.audio_only_mp4), "no-video-stream"),
    ("video-over-the-limit", "video", "mp4", _file(media.long_video), "too-long"),
    ("gif-with-12000-frames", "image", "gif", _bytes(media.too_many_frames_gif), "too-many-frames"),
    ("malformed-exif", "image", "jpg", _bytes(media.malformed_exif_jpeg), "corrupt"),
]  # fmt: skip
TASKS = {"image": render_image_asset, "video": render_video_asset}
NAMES = {"image": taskqueue.MAKE_IMAGE_RENDITIONS, "video": taskqueue.MAKE_VIDEO_RENDITIONS}


@pytest.mark.parametrize(
    ("type", "ext", "make", "code"), [pytest.param(*rest, id=name) for name, *rest in HOSTILE]
)
def test_a_hostile_file_fails_with_its_code_and_a_good_file_still_finishes_after_it(
    worker_context, sessions, tmp_path, type, ext, make, code
):
    hostile = add_asset(sessions, worker_context.storage, make(tmp_path), type=type, ext=ext)
    good = add_asset(sessions, worker_context.storage, media.good_jpeg(800, 600), ext="jpg")

    assert TASKS[type](hostile) == "failed"
    assert render_image_asset(good) == "ready"

    row = asset(sessions, hostile)
    assert (row.status, row.error) == ("failed", code)
    assert (row.thumbnail_key, row.preview_key, row.poster_key) == (None, None, None)
    assert rendition_keys(worker_context.storage, hostile) == set()
    assert worker_context.storage.head(row.storage_key) is not None
    assert asset(sessions, good).status == "ready"


def outcomes(sessions: sessionmaker, asset_ids: list[str]) -> dict[str, tuple[str, str | None]] | None:
    """Each asset's (status, error) once every one of them is ready or failed; None before that."""
    with sessions() as session:
        rows = session.execute(
            select(Asset.id, Asset.status, Asset.error).where(Asset.id.in_([uuid.UUID(i) for i in asset_ids]))
        )
        found = {str(row.id): (row.status, row.error) for row in rows}
    return found if all(status in ("ready", "failed") for status, _ in found.values()) else None


@pytest.mark.e2e
def test_one_worker_process_fails_every_hostile_file_then_finishes_good_ones(settings, engine, tmp_path):
    storage = make_storage(settings)
    committed = sessionmaker(engine, expire_on_commit=False)
    user_id = f"user_hostile_{uuid.uuid4().hex[:8]}"
    hostile = {}
    for _name, type, ext, make, code in HOSTILE:
        hostile[add_asset(committed, storage, make(tmp_path), type=type, ext=ext, user_id=user_id)] = (
            type,
            code,
        )
    clip = media.small_mp4(tmp_path, 1.0, "320x240").read_bytes()
    good_image = add_asset(committed, storage, media.good_jpeg(1200, 900), ext="jpg", user_id=user_id)
    good_video = add_asset(committed, storage, clip, type="video", ext="mp4", user_id=user_id)
    try:
        # One pool process (-c 1): had any hostile file killed it, the pool would have replaced it.
        with running(
            worker_command("images,videos"), settings_env(settings), tmp_path / "worker.log"
        ) as worker:
            pool = wait_until(lambda: pool_children(worker.pid), timeout=30)
            client = taskqueue.make_client(settings)
            for asset_id, (type, _code) in hostile.items():
                taskqueue.send(client, NAMES[type], asset_id)
            failed = wait_until(lambda: outcomes(committed, list(hostile)), timeout=90, interval=0.25)
            taskqueue.send(client, taskqueue.MAKE_IMAGE_RENDITIONS, good_image)
            taskqueue.send(client, taskqueue.MAKE_VIDEO_RENDITIONS, good_video)
            finished = wait_until(
                lambda: outcomes(committed, [good_image, good_video]), timeout=60, interval=0.25
            )
            assert pool_children(worker.pid) == pool
        assert failed == {asset_id: ("failed", code) for asset_id, (_type, code) in hostile.items()}
        assert finished == dict.fromkeys([good_image, good_video], ("ready", None))
        assert open_webp(storage, asset(committed, good_image).thumbnail_key).size == (400, 300)
        assert open_webp(storage, asset(committed, good_video).poster_key).size == (320, 240)
    finally:
        remove_committed(engine, storage, [*hostile, good_image, good_video], user_id)
