"""Direct uploads (SPEC §12): the Companion S3 multipart routes on local disk and on a real S3 server."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from core import taskqueue
from models.plans import MIB
from models.tables import Plan, User
from tests.conftest import build_services
from tests.web.direct_uploading import DirectClient
from tests.web.uploading import assert_problem, leftovers, queued, stored_keys
from tests.workers.media.hostile_media import good_jpeg, text_as_jpg
from web.app import create_app
from workers.maintenance import abort_stale_multipart_uploads
from workers.metrics import MULTIPART_ABORTED

FREE_QUOTA = 500 * MIB


@pytest.fixture(params=["local", "s3"])
def backend_app(request, settings, engine, sessions):
    chosen = request.getfixturevalue("s3_settings") if request.param == "s3" else settings
    return create_app(chosen, build_services(chosen, engine, sessions))


def big_jpeg() -> bytes:
    """A real JPEG header followed by padding: two parts (5 MiB and a little more), cheap to make."""
    return good_jpeg(64, 48) + bytes(5 * MIB + 4096)


def ticket_client(app, auth_header, user_id: str) -> DirectClient:
    client = app.test_client()
    opened = client.post("/v1/uploads/sessions", headers=auth_header(user_id))
    assert opened.status_code == 201, opened.data
    return DirectClient(client, opened.json["companionEndpoint"].removeprefix("http://localhost"))


def test_an_upload_session_gives_a_companion_endpoint_bound_to_the_caller_for_an_hour(client, auth_header):
    response = client.post("/v1/uploads/sessions", headers=auth_header("user_session"))

    assert response.status_code == 201
    endpoint = response.json["companionEndpoint"]
    assert endpoint.startswith("http://localhost/v1/uploads/t/") and len(endpoint.rsplit("/", 1)[1]) >= 32
    assert response.json["expiresAt"] > 0


def test_an_unknown_ticket_is_refused_with_a_message_uppy_can_show(client):
    response = client.post("/v1/uploads/t/not-a-ticket/s3/multipart", json={"type": "image/jpeg"})

    assert_problem(response, 401, "unauthorized")
    assert response.json["message"] == response.json["detail"]


@pytest.mark.parametrize("through", ["ticket", "bearer"])
def test_a_multipart_upload_becomes_a_pending_charged_asset_queued_for_renditions(
    backend_app, auth_header, session, redis_client, settings, through
):
    user_id = f"user_direct_{through}"
    if through == "ticket":
        direct = ticket_client(backend_app, auth_header, user_id)
    else:
        direct = DirectClient(backend_app.test_client(), headers=auth_header(user_id))
    content = big_jpeg()

    response = direct.upload(content, prompt="a red fox", relativePath=None, type="image/jpeg")

    assert response.status_code == 200, response.data
    asset = response.json["asset"]
    assert response.json["location"] == f"http://localhost/v1/assets/{asset['id']}"
    assert (asset["status"], asset["type"], asset["mimeType"]) == ("pending", "image", "image/jpeg")
    assert (asset["sizeBytes"], asset["metadata"]["prompt"]) == (len(content), "a red fox")
    keys, rows, used = leftovers(backend_app, session, user_id)
    assert (keys, rows, used) == ([response.json["key"]], 1, len(content))
    with backend_app.extensions["iskra"].storage.open(response.json["key"]) as stored:
        assert stored.read() == content
    assert (taskqueue.MAKE_IMAGE_RENDITIONS, [asset["id"]]) in queued(redis_client, settings, "images")


def test_listed_parts_are_a_bare_array_of_number_size_and_etag(backend_app, auth_header):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_list_parts"))
    created = direct.create().json
    content = big_jpeg()
    sent = direct.upload_parts(created["uploadId"], created["key"], content)

    listed = direct.list_parts(created["uploadId"], created["key"])

    assert listed.status_code == 200
    assert [(p["PartNumber"], p["Size"]) for p in listed.json] == [(1, 5 * MIB), (2, len(content) - 5 * MIB)]
    assert [p["ETag"].strip('"') for p in listed.json] == [p["ETag"].strip('"') for p in sent]


def test_etags_sent_back_without_quotes_complete_the_upload(backend_app, auth_header):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_bare_etags"))
    created = direct.create().json
    parts = direct.upload_parts(created["uploadId"], created["key"], big_jpeg())

    bare = [{"PartNumber": p["PartNumber"], "ETag": p["ETag"].strip('"')} for p in parts]
    response = direct.complete(created["uploadId"], created["key"], bare)

    assert response.status_code == 200, response.data


def test_a_refused_completion_leaves_no_object_no_row_and_no_charge(backend_app, auth_header, session):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_refused_direct"))

    response = direct.upload(text_as_jpg())

    assert_problem(response, 415, "unsupported-media-type")
    assert response.json["message"] == response.json["detail"]
    assert leftovers(backend_app, session, "user_refused_direct") == ([], 0, 0)


def test_a_completion_over_the_per_file_limit_is_refused_and_deleted(backend_app, auth_header, session):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_too_big_direct"))
    direct.client.get("/v1/me", headers=direct.headers)
    session.execute(update(Plan).where(Plan.key == "free").values(max_upload_bytes=5 * MIB))
    session.commit()

    response = direct.upload(big_jpeg())  # declares no size: only the stored object can tell

    assert_problem(response, 413, "payload-too-large")
    assert leftovers(backend_app, session, "user_too_big_direct") == ([], 0, 0)


def test_a_completion_that_cannot_fit_the_quota_is_refused_and_charges_nothing(
    backend_app, auth_header, session
):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_full_direct"))
    direct.client.get("/v1/me", headers=direct.headers)
    created = direct.create().json
    parts = direct.upload_parts(created["uploadId"], created["key"], big_jpeg())
    almost_full = FREE_QUOTA - MIB
    session.execute(
        update(User).where(User.user_id == "user_full_direct").values(storage_used_bytes=almost_full)
    )
    session.commit()

    response = direct.complete(created["uploadId"], created["key"], parts)

    assert_problem(response, 507, "quota-exceeded")
    assert leftovers(backend_app, session, "user_full_direct") == ([], 0, almost_full)


def test_completing_twice_returns_the_same_asset_and_charges_once(backend_app, auth_header, session):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_twice"))
    created = direct.create().json
    parts = direct.upload_parts(created["uploadId"], created["key"], big_jpeg())

    first = direct.complete(created["uploadId"], created["key"], parts)
    second = direct.complete(created["uploadId"], created["key"], parts)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json["asset"]["id"] == second.json["asset"]["id"]
    assert leftovers(backend_app, session, "user_twice")[1:] == (1, len(big_jpeg()))


def test_an_idempotency_key_on_complete_replays_through_either_endpoint(client, auth_header):
    bearer = DirectClient(client, headers=auth_header("user_idem_direct"))
    created = bearer.create().json
    parts = bearer.upload_parts(created["uploadId"], created["key"], good_jpeg(32, 32))
    key = {"Idempotency-Key": "complete-1"}
    first = bearer.complete(created["uploadId"], created["key"], parts, headers=key)
    opened = client.post("/v1/uploads/sessions", headers=auth_header("user_idem_direct")).json
    ticket = DirectClient(client, opened["companionEndpoint"].removeprefix("http://localhost"))

    again = ticket.complete(created["uploadId"], created["key"], parts, headers=key)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json


def test_another_users_upload_is_not_found(client, auth_header):
    owner = DirectClient(client, headers=auth_header("user_owner"))
    created = owner.create().json
    stranger = DirectClient(client, headers=auth_header("user_stranger"))

    for response in (
        stranger.sign(created["uploadId"], created["key"], 1),
        stranger.list_parts(created["uploadId"], created["key"]),
        stranger.complete(created["uploadId"], created["key"], [{"PartNumber": 1, "ETag": "x"}]),
        stranger.abort(created["uploadId"], created["key"]),
        owner.sign(created["uploadId"], created["key"].replace(".jpg", ".png"), 1),
    ):
        assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    ("metadata", "file_type", "status", "type_"),
    [
        ({"size": 25 * MIB + 1}, "video/mp4", 413, "payload-too-large"),
        ({"size": FREE_QUOTA + 1}, "video/mp4", 413, "payload-too-large"),
        ({}, "image/svg+xml", 415, "unsupported-media-type"),
        ({"notAField": 1, "size": 10}, "image/png", 422, "validation-failed"),
    ],
)
def test_a_declared_upload_that_cannot_be_accepted_is_refused_before_anything_is_stored(
    client, auth_header, session, metadata, file_type, status, type_
):
    direct = DirectClient(client, headers=auth_header("user_early_refusal"))

    response = direct.create("file", file_type, **metadata)

    assert_problem(response, status, type_)
    assert stored_keys(client.application.extensions["iskra"].storage, "user_early_refusal") == []


def test_a_declared_size_that_cannot_fit_the_quota_is_refused_with_507(client, auth_header, session):
    direct = DirectClient(client, headers=auth_header("user_early_full"))
    client.get("/v1/me", headers=direct.headers)
    session.execute(
        update(User).where(User.user_id == "user_early_full").values(storage_used_bytes=FREE_QUOTA - 10)
    )
    session.commit()

    assert_problem(direct.create("clip.mp4", "video/mp4", size=11), 507, "quota-exceeded")


def test_an_aborted_upload_is_gone_and_answers_an_empty_object(backend_app, auth_header):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_abort"))
    created = direct.create().json
    direct.upload_parts(created["uploadId"], created["key"], good_jpeg(16, 16))

    aborted = direct.abort(created["uploadId"], created["key"])

    assert (aborted.status_code, aborted.json) == (200, {})
    assert_problem(direct.list_parts(created["uploadId"], created["key"]), 404, "not-found")


def test_the_single_put_route_for_empty_files_answers_invalid_media_empty(client, auth_header):
    response = client.get("/v1/uploads/s3/params?filename=a&type=image/png", headers=auth_header())

    assert_problem(response, 422, "invalid-media")
    assert response.json["code"] == "empty"
    assert response.json["message"] == response.json["detail"]


def test_a_part_url_refuses_a_part_larger_than_the_plans_file_limit(client, auth_header, session):
    direct = DirectClient(client, headers=auth_header("user_big_part"))
    client.get("/v1/me", headers=direct.headers)
    session.execute(update(Plan).where(Plan.key == "free").values(max_upload_bytes=1024))
    session.commit()
    created = direct.create().json
    url = direct.sign(created["uploadId"], created["key"], 1).json["url"]

    assert direct.put_part(url, bytes(1025))[0] == 413
    assert direct.put_part(url.replace("/parts/", "/parts/x"), bytes(10))[0] == 403
    assert direct.list_parts(created["uploadId"], created["key"]).json == []


def test_abandoned_uploads_disappear_after_the_maintenance_sweep(backend_app, auth_header, worker_context):
    direct = DirectClient(backend_app.test_client(), headers=auth_header("user_abandoned"))
    storage = backend_app.extensions["iskra"].storage
    worker_context.storage = storage
    created = direct.create().json
    direct.upload_parts(created["uploadId"], created["key"], good_jpeg(16, 16))

    counted = MULTIPART_ABORTED.labels(worker_context.settings.storage_backend)._value.get()

    assert abort_stale_multipart_uploads(max_age_seconds=3600) == 0
    assert abort_stale_multipart_uploads(max_age_seconds=0) >= 1
    assert MULTIPART_ABORTED.labels(worker_context.settings.storage_backend)._value.get() > counted

    assert_problem(direct.list_parts(created["uploadId"], created["key"]), 404, "not-found")
    assert created["uploadId"] not in {u.upload_id for u in storage.incomplete_uploads(_far_future())}


def _far_future():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


def test_the_openapi_document_describes_the_direct_upload_routes_under_both_endpoints(client):
    paths = client.get("/openapi.json").json["paths"]

    for endpoint in ("/v1/uploads", "/v1/uploads/t/{ticket}"):
        assert {"507", "415", "413"} <= set(paths[f"{endpoint}/s3/multipart"]["post"]["responses"])
        complete = paths[f"{endpoint}/s3/multipart/{{upload_id}}/complete"]["post"]
        assert {"200", "404", "413", "415", "422", "507"} <= set(complete["responses"])
    assert "201" in paths["/v1/uploads/sessions"]["post"]["responses"]
