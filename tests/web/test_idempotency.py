"""Idempotency-Key: a retry gets the first answer without a second effect; misuse is 409, 422 or 400."""

from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from core import taskqueue
from models import projects
from models.idempotency import LOCK_TTL_SECONDS, RESPONSE_TTL_SECONDS
from models.tables import Asset, Project, User
from tests.queues import take
from tests.web.uploading import assert_problem, leftovers
from tests.workers.media.hostile_media import good_jpeg

RESERVE = "/v1/me/generations/reserve"


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def upload(client, headers, content: bytes, boundary: str, **fields):
    """A multipart upload framed with `boundary` (each browser attempt picks its own)."""
    parts = MultiDict(fields)
    parts.add("file", FileStorage(io.BytesIO(content), "photo.jpg", "file", "image/jpeg"))
    _, body = encode_multipart(parts, boundary=boundary)
    return client.post(
        "/v1/assets", data=body, headers=headers, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_a_retried_upload_after_a_lost_response_creates_one_asset_and_charges_once(
    app, client, auth_header, session, redis_client, settings
):
    headers = keyed(auth_header("user_retry"), "upload-7f3a")
    content = good_jpeg(64, 48)

    first = upload(client, headers, content, "attempt-one", metadata='{"prompt": "a fox"}')
    retry = upload(
        client, headers, content, "attempt-two-with-another-boundary", metadata='{"prompt": "a fox"}'
    )

    assert first.status_code == retry.status_code == 201
    assert retry.data == first.data
    assert retry.headers["Location"] == first.headers["Location"] == f"/v1/assets/{first.json['id']}"
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    objects, rows, charged = leftovers(app, session, "user_retry")
    assert (len(objects), rows, charged) == (1, 1, len(content))
    queued = take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, first.json["id"])
    assert len(queued) == 1


def test_the_same_key_with_another_file_or_other_fields_is_422_and_stores_nothing_more(
    app, client, auth_header, session
):
    headers = keyed(auth_header("user_reuse"), "one-key")
    first = upload(client, headers, good_jpeg(64, 48), "b1")

    other_file = upload(client, headers, good_jpeg(64, 49), "b2")
    other_fields = upload(client, headers, good_jpeg(64, 48), "b3", metadata='{"prompt": "else"}')

    assert first.status_code == 201
    assert_problem(other_file, 422, "idempotency-key-reused")
    assert_problem(other_fields, 422, "idempotency-key-reused")
    assert leftovers(app, session, "user_reuse")[1:] == (1, len(good_jpeg(64, 48)))


def test_the_same_key_on_another_route_is_422(client, auth_header):
    headers = keyed(auth_header("user_reuse_route"), "shared")

    created = client.post("/v1/projects", headers=headers, json={"name": "Board"})
    reserved = client.post(RESERVE, headers=headers, json={"name": "Board"})

    assert created.status_code == 201
    assert_problem(reserved, 422, "idempotency-key-reused")


def test_a_replayed_reservation_charges_the_quota_once(client, auth_header, session):
    headers = keyed(auth_header("user_reserve_twice"), "reserve-1")

    first = client.post(RESERVE, headers=headers, json={"type": "image", "count": 3})
    second = client.post(RESERVE, headers=headers, json={"type": "image", "count": 3})
    unkeyed = client.post(
        RESERVE, headers=auth_header("user_reserve_twice"), json={"type": "image", "count": 3}
    )

    assert (first.status_code, first.json["used"]) == (200, 3)
    assert (second.json, second.headers["Idempotent-Replayed"]) == (first.json, "true")
    assert unkeyed.json["used"] == 6
    assert session.scalar(select(User.images_used_in_period).where(User.user_id == "user_reserve_twice")) == 6


def test_the_same_key_from_another_user_is_their_own(client, auth_header, session):
    mine = client.post("/v1/projects", headers=keyed(auth_header("user_key_a"), "k"), json={"name": "A"})
    theirs = client.post("/v1/projects", headers=keyed(auth_header("user_key_b"), "k"), json={"name": "B"})

    assert mine.status_code == theirs.status_code == 201
    assert mine.json["id"] != theirs.json["id"]
    assert "Idempotent-Replayed" not in theirs.headers
    assert (mine.json["name"], theirs.json["name"]) == ("A", "B")


def test_a_kept_refusal_is_replayed(client, auth_header, session):
    headers = keyed(auth_header("user_kept_refusal"), "import-1")
    body = {"sourceUrl": "https://127.0.0.1/a.png", "assetType": "image"}

    first = client.post("/v1/assets/import", headers=headers, json=body)
    retry = client.post("/v1/assets/import", headers=headers, json=body)

    assert_problem(first, 422, "source-url-refused")
    assert retry.data == first.data and retry.headers["Idempotent-Replayed"] == "true"


def test_a_conflict_is_not_kept_so_the_retry_runs_again_once_it_is_resolved(
    client, auth_header, session, app
):
    app.extensions["iskra"].settings = app.extensions["iskra"].settings.model_copy(
        update={"max_projects_per_user": 1}
    )
    headers = auth_header("user_at_cap")
    only = client.get("/v1/projects", headers=headers).json["items"][0]["id"]

    refused = client.post("/v1/projects", headers=keyed(headers, "make-2"), json={"name": "Second"})
    client.delete(f"/v1/projects/{only}", headers=headers)
    retried = client.post("/v1/projects", headers=keyed(headers, "make-2"), json={"name": "Second"})

    assert_problem(refused, 409, "too-many-projects")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_a_server_failure_is_not_kept_so_the_retry_can_succeed(client, auth_header, app, monkeypatch):
    headers = keyed(auth_header("user_failed_once"), "fails-first")
    real = projects.create_project
    monkeypatch.setattr(projects, "create_project", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    failed = client.post("/v1/projects", headers=headers, json={"name": "X"})
    monkeypatch.setattr(projects, "create_project", real)

    retried = client.post("/v1/projects", headers=headers, json={"name": "X"})

    assert failed.status_code == 500
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_a_malformed_key_is_refused_with_400_and_does_nothing(client, auth_header, session, key):
    response = client.post("/v1/projects", headers=keyed(auth_header("user_bad_key"), key), json={})

    assert_problem(response, 400, "invalid-idempotency-key")
    assert (
        session.scalar(select(func.count()).select_from(Project).where(Project.user_id == "user_bad_key"))
        == 0
    )


def test_a_key_of_255_printable_characters_is_accepted(client, auth_header):
    key = "".join(chr(32 + index % 95) for index in range(255))

    response = client.post("/v1/projects", headers=keyed(auth_header(), key), json={})

    assert response.status_code == 201


def test_keys_are_kept_under_the_prefix_for_a_day_and_locks_are_gone(
    client, auth_header, redis_client, settings
):
    client.post("/v1/projects", headers=keyed(auth_header("user_ttl"), "ttl-key"), json={})

    found = [key.decode() for key in redis_client.scan_iter(f"{settings.redis_key_prefix}idempotency:*")]
    kept = [key for key in found if not key.endswith(":lock")]
    assert kept and len(kept) == len(found)  # every lock is released once its request has answered
    assert all(0 < redis_client.ttl(key) <= RESPONSE_TTL_SECONDS for key in kept)
    redis_client.delete(*found)


def test_a_duplicate_while_the_first_still_runs_is_409_then_replayed_once_it_answered(
    committed_app, auth_header, engine, monkeypatch
):
    headers = keyed(auth_header("user_concurrent_key"), "double-click")
    committed_app.test_client().get("/v1/me", headers=headers)
    entered, release = threading.Event(), threading.Event()
    real = projects.create_project

    def slow_create(*args):
        entered.set()
        assert release.wait(10)
        return real(*args)

    monkeypatch.setattr(projects, "create_project", slow_create)
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(
            committed_app.test_client().post, "/v1/projects", headers=headers, json={"name": "P"}
        )
        assert entered.wait(10)
        during = committed_app.test_client().post("/v1/projects", headers=headers, json={"name": "P"})
        release.set()
        first = first.result(timeout=10)
    after = committed_app.test_client().post("/v1/projects", headers=headers, json={"name": "P"})

    assert_problem(during, 409, "idempotency-key-in-use")
    assert first.status_code == 201
    assert (after.status_code, after.json) == (201, first.json)
    with engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM projects WHERE user_id = 'user_concurrent_key'"))
    assert count == 2  # Project 01, made on first sight, and the one created once
    assert LOCK_TTL_SECONDS >= 60


def test_a_preflight_allows_the_idempotency_key_header(client):
    response = client.options(
        "/v1/assets",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )

    assert "idempotency-key" in response.headers["Access-Control-Allow-Headers"].lower()


def test_uploads_without_a_key_are_not_deduplicated(app, client, auth_header, session):
    headers = auth_header("user_no_key")
    content = good_jpeg(32, 32)

    first = upload(client, headers, content, "b1")
    second = upload(client, headers, content, "b1")

    assert first.json["id"] != second.json["id"]
    assert session.scalar(select(func.count()).select_from(Asset).where(Asset.user_id == "user_no_key")) == 2
    assert uuid.UUID(first.json["id"])
