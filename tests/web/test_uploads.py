"""POST /v1/assets: streaming uploads, sniffed types, header limits, atomic quota and no leftovers."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from PIL import Image
from sqlalchemy import func, select, text, update
from werkzeug.test import EnvironBuilder, run_wsgi_app

from core import taskqueue
from models.errors import StorageError
from models.plans import MIB
from models.storage import make_storage
from models.storage.keys import original_key
from models.tables import Asset, Plan, User
from tests.conftest import build_services
from tests.web.uploading import assert_problem, leftovers, queued, stored_keys, upload
from tests.workers.media.hostile_media import (
    good_jpeg,
    huge_png_header,
    malformed_exif_jpeg,
    svg,
    text_as_jpg,
    tiff_with_thousands_of_overlapping_tags,
    zero_bytes,
    zip_file,
)
from tests.workers.media.phone_media import avif, heic, huge_grid_heic
from web.app import create_app
from web.uploads import FIELD_BYTES, READ_BYTES

FREE_QUOTA = 500 * MIB


@pytest.fixture(params=["local", "s3"])
def backend_app(request, settings, engine, sessions):
    """The API on the local backend, and on S3 (a real SeaweedFS) where the backend matters."""
    chosen = request.getfixturevalue("s3_settings") if request.param == "s3" else settings
    return create_app(chosen, build_services(chosen, engine, sessions))


def test_a_jpeg_upload_is_stored_charged_and_queued_for_renditions(
    backend_app, auth_header, session, redis_client, settings
):
    headers = auth_header("user_uploader")
    content = good_jpeg(64, 48)
    metadata = json.dumps({"prompt": "a red fox", "seed": 42, "cameraAngle": "low"})

    response = upload(backend_app.test_client(), headers, content, metadata=metadata, width="64")

    assert response.status_code == 201, response.json
    body = response.json
    assert response.headers["Location"] == f"/v1/assets/{body['id']}"
    assert (body["type"], body["status"], body["mimeType"], body["sizeBytes"]) == (
        "image",
        "pending",
        "image/jpeg",
        len(content),
    )
    assert body["metadata"]["prompt"] == "a red fox" and body["metadata"]["cameraAngle"] == "low"
    assert body["urls"]["original"] and body["urls"]["thumbnail"] is None
    assert body["width"] is None  # hints are not stored: the worker measures
    asset = session.get(Asset, uuid.UUID(body["id"]))
    assert asset.generation == {"prompt": "a red fox", "seed": 42, "camera_angle": "low"}
    # The key is made of a hash of the user id, the server's asset id and the sniffed type's extension.
    assert asset.storage_key == original_key("user_uploader", asset.id, "jpg")
    assert "user_uploader" not in asset.storage_key and "photo" not in asset.storage_key
    assert session.get(User, "user_uploader").storage_used_bytes == len(content)
    storage = backend_app.extensions["iskra"].storage
    with storage.open(asset.storage_key) as stored:
        assert stored.read() == content
    assert (taskqueue.MAKE_IMAGE_RENDITIONS, [body["id"]]) in queued(redis_client, settings, "images")


def test_the_client_content_type_and_file_name_are_not_trusted(client, auth_header):
    content = good_jpeg(32, 32)

    response = upload(client, auth_header(), content, filename="clip.mp4", file_type="video/mp4")

    assert response.status_code == 201
    assert (response.json["type"], response.json["mimeType"]) == ("image", "image/jpeg")


@pytest.mark.parametrize(
    ("make", "mime_type"),
    [(heic, "image/heic"), (avif, "image/avif")],
    ids=["heic", "avif"],
)
def test_heic_and_avif_photos_are_accepted_as_images(client, auth_header, make, mime_type):
    content = make(Image.new("RGB", (64, 48), (10, 120, 200)))

    response = upload(
        client, auth_header(), content, filename="photo.bin", file_type="application/octet-stream"
    )

    assert response.status_code == 201
    assert (response.json["type"], response.json["mimeType"]) == ("image", mime_type)
    assert response.json["urls"]["display"] is None  # until the worker has made the display copy


def test_a_heic_whose_grid_claims_fifty_thousand_pixels_square_is_refused_by_its_header(
    client, auth_header, app, session
):
    response = upload(client, auth_header("user_huge_heic"), huge_grid_heic())

    assert_problem(response, 422, "invalid-media")
    assert leftovers(app, session, "user_huge_heic") == ([], 0, 0)


@pytest.mark.parametrize("content", [text_as_jpg(), svg(), zip_file()], ids=["text-as-jpg", "svg", "zip"])
def test_files_that_are_not_accepted_media_are_refused_with_415_and_nothing_stored(
    client, auth_header, content, app, session
):
    headers = auth_header("user_hostile")

    response = upload(client, headers, content)

    assert_problem(response, 415, "unsupported-media-type")
    assert "HEIC, AVIF" in response.json["detail"]
    assert leftovers(app, session, "user_hostile") == ([], 0, 0)


def test_an_empty_file_is_refused_as_invalid_media(client, auth_header, app, session):
    response = upload(client, auth_header("user_empty_file"), zero_bytes())

    assert_problem(response, 422, "invalid-media")
    assert response.json["code"] == "empty"
    assert leftovers(app, session, "user_empty_file") == ([], 0, 0)


def test_a_jpeg_with_damaged_exif_is_accepted_for_the_image_task_to_judge(client, auth_header):
    # The header read needs only the size; the worker fails the asset `corrupt` (tests/workers).
    response = upload(client, auth_header(), malformed_exif_jpeg())

    assert response.status_code == 201, response.json
    assert (response.json["status"], response.json["type"]) == ("pending", "image")


def test_a_png_declaring_50000_pixels_square_is_refused_from_its_header(client, auth_header, app, session):
    response = upload(client, auth_header("user_bomb"), huge_png_header(50_000, 50_000), filename="x.png")

    assert_problem(response, 422, "invalid-media")
    assert response.json["code"] == "too-large-dimensions"
    assert leftovers(app, session, "user_bomb") == ([], 0, 0)


class _UnreadBody(io.RawIOBase):
    """A request body that records every read (a refusal from the headers must make none)."""

    def __init__(self):
        self.reads = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        self.reads += 1
        return 0


def test_a_declared_length_over_the_plan_limit_is_refused_before_a_byte_is_read(auth_header, app, session):
    body = _UnreadBody()
    environ = EnvironBuilder(
        "/v1/assets",
        method="POST",
        headers=auth_header("user_declared_big"),
        content_type="multipart/form-data; boundary=iskraboundary",
    ).get_environ()
    environ.update({"CONTENT_LENGTH": str(30 * MIB), "wsgi.input": body})

    app_iter, status, response_headers = run_wsgi_app(app, environ)
    problem = json.loads(b"".join(app_iter))

    assert status.startswith("413") and (problem["type"], problem["status"]) == ("payload-too-large", 413)
    assert response_headers["Content-Type"] == "application/problem+json"
    assert body.reads == 0
    assert leftovers(app, session, "user_declared_big") == ([], 0, 0)


def test_a_file_of_exactly_the_plan_limit_is_accepted_and_one_byte_more_is_refused(
    client, auth_header, app, session
):
    limit = 300_000
    session.execute(update(Plan).where(Plan.key == "free").values(max_upload_bytes=limit))
    session.commit()
    photo = good_jpeg(32, 32)
    headers = auth_header("user_at_the_limit")

    exact = upload(client, headers, photo + b"\0" * (limit - len(photo)))
    over = upload(client, headers, photo + b"\0" * (limit + 1 - len(photo)))

    assert (exact.status_code, exact.json["sizeBytes"]) == (201, limit)
    # The declared length (file plus multipart framing) looked acceptable: the byte count refused it.
    assert_problem(over, 413, "payload-too-large")
    kept = session.get(Asset, uuid.UUID(exact.json["id"])).storage_key
    assert leftovers(app, session, "user_at_the_limit") == ([kept], 1, limit)


def test_a_chunked_file_over_the_plan_limit_is_refused_while_streaming(auth_header, app, session):
    boundary = "iskraboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    served = {"bytes": 0}

    def body():
        yield head + b"\xff\xd8\xff"
        chunk = b"\0" * MIB
        for _ in range(30):
            served["bytes"] += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    environ = EnvironBuilder(
        "/v1/assets",
        method="POST",
        headers={**auth_header("user_chunked"), "Transfer-Encoding": "chunked"},
        content_type=f"multipart/form-data; boundary={boundary}",
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    # What gunicorn and the dev server hand over for a chunked body: no length, a terminated stream.
    environ.update({"wsgi.input": _IterStream(body()), "wsgi.input_terminated": True})

    app_iter, status, response_headers = run_wsgi_app(app, environ)
    problem = json.loads(b"".join(app_iter))

    assert status.startswith("413") and (problem["type"], problem["status"]) == ("payload-too-large", 413)
    assert response_headers["Content-Type"] == "application/problem+json"
    assert served["bytes"] < 30 * MIB  # refused as soon as the limit passed, not after reading it all
    assert leftovers(app, session, "user_chunked") == ([], 0, 0)


def test_a_client_that_drops_the_connection_mid_body_gets_400_and_nothing_is_stored(
    auth_header, app, session
):
    boundary = "iskraboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body():
        yield head + good_jpeg(16, 16)
        raise ConnectionResetError("client went away")

    environ = EnvironBuilder(
        "/v1/assets",
        method="POST",
        headers=auth_header("user_dropped"),
        content_type=f"multipart/form-data; boundary={boundary}",
    ).get_environ()
    environ.update({"CONTENT_LENGTH": str(5 * MIB), "wsgi.input": _IterStream(body())})

    app_iter, status, _ = run_wsgi_app(app, environ)
    problem = json.loads(b"".join(app_iter))

    assert status.startswith("400") and problem["type"] == "bad-request"
    assert leftovers(app, session, "user_dropped") == ([], 0, 0)


class _IterStream(io.RawIOBase):
    """A readable stream over an iterator of chunks, without a length (like a chunked request body)."""

    def __init__(self, chunks):
        self._chunks, self._pending = chunks, b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


def test_an_upload_is_received_into_the_storages_spool_and_stored_without_another_copy(
    client, auth_header, app, session
):
    content = good_jpeg(16, 16) + b"\0" * (3 * READ_BYTES)
    storage = app.extensions["iskra"].storage
    made, inodes = [], []
    original = type(storage).spool

    def watching(self):
        made.append(original(self))
        inodes.append(os.fstat(made[-1].fileno()).st_ino)
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(storage), "spool", watching)
        response = upload(client, auth_header(), content)

    assert response.status_code == 201, response.json
    key = session.get(Asset, uuid.UUID(response.json["id"])).storage_key
    # The one spool the body was written into is the stored object itself: linked into place, not copied.
    assert len(made) == 1 and made[0].closed
    assert inodes == [storage.path(key).stat().st_ino]
    assert storage.path(key).read_bytes() == content


def test_a_tiff_whose_tags_claim_a_gigabyte_is_accepted_with_bounded_memory(client, auth_header):
    # The API reads TIFF headers in-process: 120 KB of tags overlapping one another once cost ~1.1 GB here.
    content = tiff_with_thousands_of_overlapping_tags()
    tracemalloc.start()
    try:
        response = upload(
            client, auth_header("user_tiff_tags"), content, filename="x.tif", file_type="image/tiff"
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert response.status_code == 201, response.json
    assert (response.json["status"], response.json["mimeType"]) == ("pending", "image/tiff")
    assert peak < 32 * 1024 * 1024


def test_a_photo_larger_than_the_parsers_read_size_is_accepted(client, auth_header):
    # Werkzeug bounds each read chunk plus its buffered tail by the form-field limit, file parts included.
    content = good_jpeg(2000, 1500)
    assert len(content) > 2 * 64 * 1024

    response = upload(client, auth_header(), content)

    assert response.status_code == 201, response.json
    assert response.json["sizeBytes"] == len(content)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"metadata": json.dumps({"prompt": "x" * 4001})}, "prompt"),
        ({"metadata": json.dumps({"mood": "sad"})}, "mood"),
        ({"metadata": json.dumps({"seed": "9" * 65})}, "seed"),
        ({"metadata": "{not json"}, None),
        ({"metadata": json.dumps({"prompt": "a\u0000b"})}, "prompt"),
        ({"metadata": "[" * 20_000 + "]" * 20_000}, None),
        ({"metadata": '{"seed": ' + "9" * 5000 + "}"}, None),
        ({"width": "0"}, "width"),
        ({"height": "20000"}, "height"),
        ({"duration": "-1"}, "duration"),
    ],
)
def test_bad_metadata_or_absurd_hints_are_refused_with_422_and_nothing_stored(
    client, auth_header, app, session, fields, where
):
    response = upload(client, auth_header("user_fields"), good_jpeg(16, 16), **fields)

    assert_problem(response, 422, "validation-failed")
    if where:
        assert where in json.dumps(response.json)
    assert leftovers(app, session, "user_fields") == ([], 0, 0)


def test_a_form_field_too_large_to_buffer_is_refused_with_413_and_nothing_stored(
    client, auth_header, app, session
):
    oversized = json.dumps({"prompt": "x" * (FIELD_BYTES + 1)})

    response = upload(client, auth_header("user_big_field"), good_jpeg(16, 16), metadata=oversized)

    assert_problem(response, 413, "payload-too-large")
    assert leftovers(app, session, "user_big_field") == ([], 0, 0)


def _part(name: str, content: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"


BOUNDARY = "iskra-test-boundary"
PHOTO = good_jpeg(16, 16)
CLOSE = f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "type_"),
    [
        (_part("metadata", b"{}") + CLOSE, None, 400, "bad-request"),  # no file at all
        (_part("file", PHOTO, "a.jpg") + _part("file", PHOTO, "b.jpg") + CLOSE, None, 400, "bad-request"),
        (_part("photo", PHOTO, "a.jpg") + CLOSE, None, 400, "bad-request"),  # the file under another name
        (_part("file", PHOTO, "a.jpg")[:-40], None, 400, "bad-request"),  # cut off before its end
        (b"no boundary anywhere", None, 400, "bad-request"),
        (_part("file", PHOTO, "a.jpg") + CLOSE, "multipart/form-data", 400, "bad-request"),  # no boundary
        (b'{"file": "x"}', "application/json", 400, "bad-request"),
        (b"".join(_part(f"f{i}", b"x") for i in range(9)) + _part("file", PHOTO, "a.jpg") + CLOSE,
         None, 413, "payload-too-large"),  # more parts than a form has
        (f"--{BOUNDARY}\r\nX-Padding: {'x' * 5000}\r\n".encode() + b"\r\n" + PHOTO + b"\r\n" + CLOSE,
         None, 413, "payload-too-large"),  # a part header longer than any browser sends
    ],
    ids=["no-file", "two-files", "wrong-name", "truncated", "no-parts", "no-boundary", "json",
         "too-many-parts", "huge-header"],
)  # fmt: skip
def test_a_body_that_is_not_one_file_in_a_well_formed_form_is_refused_and_stores_nothing(
    client, auth_header, app, session, body, content_type, status, type_
):
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"

    response = client.post(
        "/v1/assets", data=body, headers=auth_header("user_bad_form"), content_type=content_type
    )

    assert_problem(response, status, type_)
    assert leftovers(app, session, "user_bad_form") == ([], 0, 0)


def test_an_upload_that_does_not_fit_the_quota_is_refused_with_507_and_stores_nothing(
    client, auth_header, session, app
):
    headers = auth_header("user_full")
    client.get("/v1/me", headers=headers)
    session.get(User, "user_full").storage_used_bytes = FREE_QUOTA - 100
    session.commit()
    content = good_jpeg(32, 32)

    response = upload(client, headers, content)

    assert_problem(response, 507, "quota-exceeded")
    problem = response.json
    assert (problem["usedBytes"], problem["quotaBytes"], problem["requestedBytes"]) == (
        FREE_QUOTA - 100,
        FREE_QUOTA,
        len(content),
    )
    assert leftovers(app, session, "user_full") == ([], 0, FREE_QUOTA - 100)


def test_a_quota_refusal_after_the_put_deletes_the_object(client, auth_header, session, app):
    headers = auth_header("user_late_refusal")
    client.get("/v1/me", headers=headers)
    storage = app.extensions["iskra"].storage
    real_put = storage.put

    def put_then_fill_quota(key, stream, *, content_type):
        info = real_put(key, stream, content_type=content_type)
        # Another upload wins the race between the early check and the reservation.
        session.execute(
            text("UPDATE users SET storage_used_bytes = :q WHERE user_id = 'user_late_refusal'"),
            {"q": FREE_QUOTA},
        )
        session.commit()
        return info

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage, "put", put_then_fill_quota)
        response = upload(client, headers, good_jpeg(32, 32))

    assert_problem(response, 507, "quota-exceeded")
    assert leftovers(app, session, "user_late_refusal") == ([], 0, FREE_QUOTA)


class _FailingMidway:
    """The real storage, except that put() writes part of the object and then fails."""

    def __init__(self, real):
        self.real = real

    def put(self, key, stream, *, content_type):
        self.real.put(key, io.BytesIO(stream.read(100)), content_type=content_type)
        raise StorageError("connection reset mid-upload")

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_storage_failure_mid_upload_leaves_no_row_no_usage_and_no_object(
    request, backend, settings, engine, sessions, auth_header, session
):
    chosen = request.getfixturevalue("s3_settings") if backend == "s3" else settings
    storage = make_storage(chosen)
    services = build_services(chosen, engine, sessions)
    services.storage_override = _FailingMidway(storage)
    client = create_app(chosen, services).test_client()
    headers = auth_header("user_storage_down")

    response = upload(client, headers, good_jpeg(64, 64))

    assert response.status_code == 503
    assert response.json["type"] == "service-unavailable"
    assert session.get(User, "user_storage_down").storage_used_bytes == 0
    assert (
        session.scalar(select(func.count()).select_from(Asset).where(Asset.user_id == "user_storage_down"))
        == 0
    )
    assert stored_keys(storage, "user_storage_down") == []


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_twenty_concurrent_uploads_against_room_for_ten_store_exactly_ten(
    request, backend, settings, engine, auth_header
):
    chosen = request.getfixturevalue("s3_settings") if backend == "s3" else settings
    app = request.getfixturevalue("committed_app")
    if backend == "s3":
        app = create_app(chosen, build_services(chosen, engine, app.extensions["iskra"].sessions))
    user_id = f"user_race_{backend}"
    headers = auth_header(user_id)
    app.test_client().get("/v1/me", headers=headers)
    files = [good_jpeg(40, 30, quality=50 + i) for i in range(20)]
    size = max(len(content) for content in files)
    baseline = FREE_QUOTA - 10 * size
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE users SET storage_used_bytes = :b WHERE user_id = :u"), {"b": baseline, "u": user_id}
        )
    barrier = Barrier(20)

    def send(content: bytes) -> int:
        with app.test_client() as client:
            barrier.wait()
            return upload(client, headers, content + b"\0" * (size - len(content))).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, files))

    assert sorted(statuses) == [201] * 10 + [507] * 10
    with engine.connect() as connection:
        used = connection.scalar(
            text("SELECT storage_used_bytes FROM users WHERE user_id = :u"), {"u": user_id}
        )
        keys = connection.scalars(
            text("SELECT storage_key FROM assets WHERE user_id = :u"), {"u": user_id}
        ).all()
        total = connection.scalar(
            text("SELECT sum(size_bytes) FROM assets WHERE user_id = :u"), {"u": user_id}
        )
    assert len(keys) == 10
    assert used == baseline + total == baseline + 10 * size
    assert sorted(stored_keys(app.extensions["iskra"].storage, user_id)) == sorted(keys)


def test_renditions_are_enqueued_only_after_the_asset_is_committed(
    committed_app, engine, auth_header, monkeypatch
):
    seen_by_others = []

    def enqueue_checking(task_name, *args):
        # What any other connection (a worker's) sees at the moment the task is sent.
        with engine.connect() as connection:
            status = connection.scalar(text("SELECT status FROM assets WHERE id = :id"), {"id": args[0]})
        seen_by_others.append((task_name, status))

    monkeypatch.setattr("web.views.assets.enqueue", enqueue_checking)

    response = upload(committed_app.test_client(), auth_header("user_commit_first"), good_jpeg(16, 16))

    assert response.status_code == 201
    assert seen_by_others == [(taskqueue.MAKE_IMAGE_RENDITIONS, "pending")]


def test_the_fields_uppy_sends_by_default_are_ignored_and_others_still_refused(client, auth_header, session):
    headers = auth_header("user_uppy_form")

    accepted = upload(client, headers, good_jpeg(16, 16), name="a.jpg", type="text/plain", relativePath="d/a")
    refused = upload(client, headers, good_jpeg(16, 16), colour="red")

    assert (accepted.status_code, accepted.json["mimeType"]) == (201, "image/jpeg")
    assert_problem(refused, 422, "validation-failed")
