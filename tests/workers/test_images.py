"""The image task: real Pillow work on originals in storage, recorded on the asset row."""

from __future__ import annotations

import io
import json

from core import taskqueue
from tests.workers.media.hostile_media import alpha_png, good_jpeg, oriented_jpeg, small_mp4
from tests.workers.media.phone_media import iphone_heic
from tests.workers.rendition_support import add_asset, asset, open_webp, rendition_keys
from workers.images import render_image_asset


def test_a_large_jpeg_gets_a_thumbnail_a_preview_and_a_placeholder(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, good_jpeg(2400, 1600), ext="jpg")

    assert render_image_asset(asset_id) == "ready"

    row = asset(sessions, asset_id)
    assert (row.status, row.error, row.width, row.height) == ("ready", None, 2400, 1600)
    assert open_webp(worker_context.storage, row.thumbnail_key).size == (400, 267)
    assert open_webp(worker_context.storage, row.preview_key).size == (1600, 1067)
    assert row.placeholder and len(row.placeholder) <= 128
    assert row.poster_key is None
    assert rendition_keys(worker_context.storage, asset_id) == {row.thumbnail_key, row.preview_key}


def test_a_small_png_keeps_its_alpha_and_is_neither_upscaled_nor_previewed(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, alpha_png(300, 200), ext="png")

    render_image_asset(asset_id)

    row = asset(sessions, asset_id)
    thumbnail = open_webp(worker_context.storage, row.thumbnail_key)
    assert (row.width, row.height, row.preview_key) == (300, 200, None)
    assert thumbnail.size == (300, 200)
    assert thumbnail.mode == "RGBA"
    assert thumbnail.getpixel((10, 100))[3] == 255
    assert thumbnail.getpixel((290, 100))[3] == 0


def test_exif_orientation_is_applied_to_the_recorded_size_and_the_thumbnail(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, oriented_jpeg(800, 400, 6), ext="jpg")

    render_image_asset(asset_id)

    row = asset(sessions, asset_id)
    assert (row.width, row.height) == (400, 800)
    thumbnail = open_webp(worker_context.storage, row.thumbnail_key)
    assert thumbnail.size == (200, 400)
    assert not thumbnail.getexif()


def test_a_video_handed_to_the_image_task_is_refused(worker_context, sessions, tmp_path):
    data = small_mp4(tmp_path).read_bytes()
    asset_id = add_asset(sessions, worker_context.storage, data, ext="jpg")

    assert render_image_asset(asset_id) == "failed"

    assert asset(sessions, asset_id).error == "unsupported-format"


class UnseekableStorage:
    """The real storage, but its streams cannot seek (as S3 response bodies cannot)."""

    def __init__(self, storage) -> None:
        self.storage = storage

    def open(self, key):
        with self.storage.open(key) as stream:
            data = stream.read()
        return io.BufferedReader(Unseekable(data))

    def __getattr__(self, name):
        return getattr(self.storage, name)


class Unseekable(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_an_original_that_cannot_seek_is_spooled_and_rendered(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, good_jpeg(640, 480), ext="jpg")
    worker_context.storage = UnseekableStorage(worker_context.storage)

    assert render_image_asset(asset_id) == "ready"

    assert asset(sessions, asset_id).width == 640


def test_task_arguments_survive_a_json_round_trip_and_still_drive_the_task(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, good_jpeg(64, 48), ext="jpg")
    arguments = json.loads(json.dumps([asset_id]))

    assert arguments == [asset_id]
    assert render_image_asset.name == taskqueue.MAKE_IMAGE_RENDITIONS
    assert render_image_asset(*arguments) == "ready"


def test_an_iphone_heic_gets_renditions_and_a_webp_display_copy(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, iphone_heic(), ext="heic")

    assert render_image_asset(asset_id) == "ready"

    row = asset(sessions, asset_id)
    assert (row.width, row.height) == (1512, 2016)
    assert open_webp(worker_context.storage, row.display_key).size == (1512, 2016)
    assert worker_context.storage.head(row.display_key).content_type == "image/webp"
    assert open_webp(worker_context.storage, row.thumbnail_key).size == (300, 400)
    assert rendition_keys(worker_context.storage, asset_id) == {
        row.thumbnail_key, row.preview_key, row.display_key,
    }  # fmt: skip


def test_a_jpeg_gets_no_display_copy(worker_context, sessions):
    asset_id = add_asset(sessions, worker_context.storage, good_jpeg(640, 480), ext="jpg")

    render_image_asset(asset_id)

    assert asset(sessions, asset_id).display_key is None
