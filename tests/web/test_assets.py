"""GET/DELETE /v1/assets, POST /v1/assets/import and usage as the canvas sees it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from core import taskqueue
from models.tables import Asset, PendingDeletion, User
from models.users import ensure_user
from tests.web.uploading import assert_problem, queued, upload
from tests.workers.media.hostile_media import good_jpeg


def make_assets(session, user_id: str, count: int, asset_type: str = "image") -> list[Asset]:
    """`count` ready assets, one second apart, oldest first."""
    ensure_user(session, user_id)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assets = []
    for index in range(count):
        asset_id = uuid.uuid4()
        assets.append(
            Asset(
                id=asset_id,
                user_id=user_id,
                type=asset_type,
                storage_key=f"originals/test/{asset_id}.jpg",
                mime_type="image/jpeg",
                size_bytes=10,
                status="ready",
                created_at=start + timedelta(seconds=index),
            )
        )
    session.add_all(assets)
    session.commit()
    return assets


def test_listing_is_newest_first_in_pages_of_twenty_by_default(client, auth_header, session):
    made = make_assets(session, "user_lister", 25)
    headers = auth_header("user_lister")

    first = client.get("/v1/assets", headers=headers).json
    second = client.get(f"/v1/assets?cursor={first['nextCursor']}", headers=headers).json

    newest_first = [str(asset.id) for asset in reversed(made)]
    assert [item["id"] for item in first["items"]] == newest_first[:20]
    assert [item["id"] for item in second["items"]] == newest_first[20:]
    assert second["nextCursor"] is None


def test_assets_created_in_the_same_instant_are_paged_without_loss_or_repeats(client, auth_header, session):
    made = make_assets(session, "user_same_instant", 7)
    for asset in made:
        asset.created_at = made[0].created_at
    session.commit()
    headers, seen, cursor = auth_header("user_same_instant"), [], ""
    while True:
        page = client.get(f"/v1/assets?limit=3{cursor}", headers=headers).json
        seen += [item["id"] for item in page["items"]]
        if not page["nextCursor"]:
            break
        cursor = f"&cursor={page['nextCursor']}"

    assert sorted(seen) == sorted(str(asset.id) for asset in made)


def test_listing_filters_by_type(client, auth_header, session):
    make_assets(session, "user_types", 2, "image")
    videos = make_assets(session, "user_types", 1, "video")

    body = client.get("/v1/assets?type=video", headers=auth_header("user_types")).json

    assert [item["id"] for item in body["items"]] == [str(videos[0].id)]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=x", "type=audio", "cursor=bm9wZQ", "cursor=%%%"]
)
def test_bad_list_parameters_are_refused_with_400(client, auth_header, query):
    response = client.get(f"/v1/assets?{query}", headers=auth_header())

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_blank_list_parameters_count_as_absent(client, auth_header, session):
    made = make_assets(session, "user_blank_query", 2)

    body = client.get("/v1/assets?type=&limit=&cursor=", headers=auth_header("user_blank_query")).json

    assert [item["id"] for item in body["items"]] == [str(asset.id) for asset in reversed(made)]


def test_listing_shows_only_the_callers_assets(client, auth_header, session):
    make_assets(session, "user_other_lister", 3)

    assert client.get("/v1/assets", headers=auth_header("user_empty_lister")).json["items"] == []


def test_an_asset_reads_back_with_signed_urls_for_its_renditions(client, auth_header, session):
    asset = make_assets(session, "user_reader", 1)[0]
    asset.thumbnail_key, asset.placeholder, asset.width, asset.height = (
        "renditions/x/thumbnail.webp",
        "abc",
        4,
        3,
    )
    session.commit()

    body = client.get(f"/v1/assets/{asset.id}", headers=auth_header("user_reader")).json

    assert (body["width"], body["height"], body["placeholder"], body["status"]) == (4, 3, "abc", "ready")
    assert body["urls"]["original"].startswith("/files/")
    assert body["urls"]["thumbnail"].startswith("/files/")
    assert body["urls"]["poster"] is None and body["urls"]["preview"] is None
    assert body["urls"]["display"] == body["urls"]["original"]  # a JPEG is shown as it is


@pytest.mark.parametrize("ready", [False, True], ids=["processing", "ready"])
def test_a_heic_asset_is_displayed_through_its_display_copy_once_made(client, auth_header, session, ready):
    asset = make_assets(session, "user_heic", 1)[0]
    asset.mime_type = "image/heic"
    asset.display_key = "renditions/x/display.webp" if ready else None
    session.commit()

    body = client.get(f"/v1/assets/{asset.id}", headers=auth_header("user_heic")).json

    assert body["urls"]["original"].startswith("/files/")
    if ready:
        assert body["urls"]["display"].startswith("/files/")
        assert body["urls"]["display"] != body["urls"]["original"]
    else:
        assert body["urls"]["display"] is None


def test_someone_elses_asset_and_a_missing_one_get_byte_identical_404s(client, auth_header, session):
    asset = make_assets(session, "user_owner", 1)[0]
    intruder = auth_header("user_intruder")

    responses = [
        client.get(f"/v1/assets/{asset.id}", headers=intruder),
        client.get(f"/v1/assets/{uuid.uuid4()}", headers=intruder),
        client.get("/v1/assets/not-a-uuid", headers=intruder),
        client.delete(f"/v1/assets/{asset.id}", headers=intruder),
        client.delete(f"/v1/assets/{uuid.uuid4()}", headers=intruder),
    ]

    assert {response.status_code for response in responses} == {404}
    assert len({response.data for response in responses}) == 1
    assert session.get(Asset, asset.id) is not None


def test_usage_follows_an_upload_and_its_delete_at_once(client, auth_header, session, redis_client, settings):
    headers = auth_header("user_usage_flow")
    content = good_jpeg(48, 48)

    created = upload(client, headers, content).json
    after_upload = client.get("/v1/me/usage", headers=headers).json["storage"]["usedBytes"]
    deleted = client.delete(f"/v1/assets/{created['id']}", headers=headers)
    after_delete = client.get("/v1/me/usage", headers=headers).json["storage"]["usedBytes"]

    assert (after_upload, deleted.status_code, deleted.data, after_delete) == (len(content), 204, b"", 0)
    outboxed = session.scalars(select(PendingDeletion.storage_key)).all()
    assert any(key.endswith(f"{created['id']}.jpg") for key in outboxed)
    assert (taskqueue.PURGE_DELETED_OBJECTS, []) in queued(redis_client, settings, "maintenance")
    assert client.get(f"/v1/assets/{created['id']}", headers=headers).status_code == 404


def test_an_import_is_accepted_as_a_pending_asset_and_queued(
    client, auth_header, session, redis_client, settings
):
    headers = auth_header("user_importer")
    body = {
        "sourceUrl": "https://cdn.example.com/out/1.png",
        "assetType": "image",
        "metadata": {"model": "flux"},
    }

    response = client.post("/v1/assets/import", json=body, headers=headers)

    assert response.status_code == 202, response.json
    created = response.json
    assert response.headers["Location"] == f"/v1/assets/{created['id']}"
    assert (created["status"], created["sizeBytes"], created["originalUrl"]) == (
        "pending",
        0,
        body["sourceUrl"],
    )
    assert created["urls"]["original"] is None and created["metadata"] == {
        **created["metadata"],
        "model": "flux",
    }
    assert (taskqueue.IMPORT_REMOTE_ASSET, [created["id"]]) in queued(redis_client, settings, "images")
    assert session.get(User, "user_importer").storage_used_bytes == 0


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://cdn.example.com/a.png", "scheme-not-allowed"),
        ("file:///etc/passwd", "scheme-not-allowed"),
        ("https://169.254.169.254/latest/meta-data", "blocked-address"),
        ("https://[::1]/a.png", "blocked-address"),
        ("https://user:pw@cdn.example.com/a.png", "invalid-url"),
        ("https://evil.example@127.0.0.1/a.png", "invalid-url"),
        ("https://cdn.example.com/a\u0000.png", "invalid-url"),
        ("https://2130706433/a.png", "blocked-address"),
        ("https://0x7f.1/a.png", "blocked-address"),
        ("https://0177.0.0.1/a.png", "blocked-address"),
        ("https://0/a.png", "blocked-address"),
        ("https://[::ffff:169.254.169.254]/a.png", "blocked-address"),
        ("https://[::127.0.0.1]/a.png", "blocked-address"),
    ],
)
def test_an_import_of_an_obviously_forbidden_url_is_refused_at_once(client, auth_header, url, code, session):
    response = client.post(
        "/v1/assets/import",
        json={"sourceUrl": url, "assetType": "image"},
        headers=auth_header("user_bad_url"),
    )

    assert response.status_code == 422
    assert (response.json["type"], response.json["code"]) == ("source-url-refused", code)
    assert session.scalars(select(Asset).where(Asset.user_id == "user_bad_url")).all() == []


@pytest.mark.parametrize("field", ["prompt", "model", "seed"])
def test_import_metadata_holding_a_nul_is_refused_and_creates_nothing(client, auth_header, session, field):
    metadata = {field: "a\u0000b"}
    body = {"sourceUrl": "https://cdn.example.com/a.png", "assetType": "image", "metadata": metadata}

    response = client.post("/v1/assets/import", json=body, headers=auth_header("user_nul_metadata"))

    assert (response.status_code, response.json["type"]) == (422, "validation-failed")
    assert session.scalars(select(Asset).where(Asset.user_id == "user_nul_metadata")).all() == []


def test_an_import_body_with_unknown_keys_is_refused(client, auth_header):
    body = {"sourceUrl": "https://cdn.example.com/a.png", "assetType": "image", "extra": 1}

    assert client.post("/v1/assets/import", json=body, headers=auth_header()).status_code == 422


def test_imports_and_purges_are_enqueued_only_after_their_transaction_commits(
    committed_app, engine, auth_header, monkeypatch
):
    seen_by_others = []

    def enqueue_checking(task_name, *args):
        # What a worker's connection sees at the moment the task is sent.
        with engine.connect() as connection:
            assets = connection.scalar(text("SELECT count(*) FROM assets"))
            outboxed = connection.scalar(text("SELECT count(*) FROM pending_deletions"))
        seen_by_others.append((task_name, assets, outboxed))

    monkeypatch.setattr("web.views.assets.enqueue", enqueue_checking)
    client, headers = committed_app.test_client(), auth_header("user_commit_order")
    body = {"sourceUrl": "https://cdn.example.com/out/2.png", "assetType": "image"}

    created = client.post("/v1/assets/import", json=body, headers=headers)
    deleted = client.delete(f"/v1/assets/{created.json['id']}", headers=headers)

    assert (created.status_code, deleted.status_code) == (202, 204)
    assert seen_by_others == [
        (taskqueue.IMPORT_REMOTE_ASSET, 1, 0),
        (taskqueue.PURGE_DELETED_OBJECTS, 0, 1),
    ]


def test_ids_reads_the_callers_assets_in_the_order_asked_leaving_out_others(client, auth_header, session):
    mine = make_assets(session, "user_batch", 3)
    theirs = make_assets(session, "user_batch_other", 1)[0]
    asked = [mine[2].id, theirs.id, uuid.uuid4(), mine[0].id, mine[2].id, mine[1].id]

    response = client.get(f"/v1/assets?ids={','.join(map(str, asked))}", headers=auth_header("user_batch"))

    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [str(mine[i].id) for i in (2, 0, 1)]
    assert response.json["nextCursor"] is None
    assert response.json["items"][0]["urls"]["original"].startswith("/files/")


def test_ids_takes_a_hundred_ids_and_the_type_filter(client, auth_header, session):
    images = make_assets(session, "user_batch_many", 99)
    video = make_assets(session, "user_batch_many", 1, "video")[0]
    ids = ",".join(str(asset.id) for asset in [*images, video])
    headers = auth_header("user_batch_many")

    every = client.get(f"/v1/assets?ids={ids}", headers=headers).json["items"]
    videos = client.get(f"/v1/assets?ids={ids}&type=video", headers=headers).json["items"]

    assert len(every) == 100
    assert [item["id"] for item in videos] == [str(video.id)]


@pytest.mark.parametrize(
    "ids",
    [
        ",",
        "not-a-uuid",
        f"{uuid.uuid4()},",
        f"{uuid.uuid4()},,{uuid.uuid4()}",
        f"{uuid.uuid4()} ",
        ",".join(str(uuid.uuid4()) for _ in range(101)),
        f"{uuid.uuid4()}&cursor=bm9wZQ",
    ],
)
def test_malformed_ids_are_refused_with_400(client, auth_header, ids):
    response = client.get(f"/v1/assets?ids={ids}", headers=auth_header())

    assert response.status_code == 400
    assert response.json["type"] == "bad-request"


def test_blank_ids_are_the_ordinary_listing(client, auth_header, session):
    made = make_assets(session, "user_blank_ids", 2)

    body = client.get("/v1/assets?ids=", headers=auth_header("user_blank_ids")).json

    assert [item["id"] for item in body["items"]] == [str(asset.id) for asset in reversed(made)]


def reserve_generations(client, headers, asset_type: str = "image", count: int = 2) -> str:
    answer = client.post(
        "/v1/me/generations/reserve", json={"type": asset_type, "count": count}, headers=headers
    )
    return answer.json["reservationId"]


def import_body(**extra) -> dict:
    return {"sourceUrl": "https://cdn.example.com/out/gen.png", "assetType": "image", **extra}


def test_an_import_settles_one_unit_of_its_reservation_which_is_then_not_refundable(client, auth_header):
    headers = auth_header("user_settler")
    reservation_id = reserve_generations(client, headers, count=2)

    imported = client.post(
        "/v1/assets/import", json=import_body(reservationId=reservation_id), headers=headers
    )
    refunded = client.post(
        "/v1/me/generations/refund", json={"reservationId": reservation_id}, headers=headers
    )

    assert imported.status_code == 202
    assert (refunded.status_code, refunded.json["refunded"], refunded.json["used"]) == (200, 1, 1)
    closed = client.post("/v1/me/generations/refund", json={"reservationId": reservation_id}, headers=headers)
    assert (closed.status_code, closed.json["reservationStatus"]) == (409, "settled")


def test_an_import_under_a_reservation_with_nothing_left_is_409_and_creates_nothing(
    client, auth_header, session
):
    headers = auth_header("user_settled_twice")
    reservation_id = reserve_generations(client, headers, count=1)
    body = import_body(reservationId=reservation_id)

    first = client.post("/v1/assets/import", json=body, headers=headers)
    second = client.post("/v1/assets/import", json=body, headers=headers)

    assert first.status_code == 202
    assert_problem(second, 409, "reservation-closed")
    assert len(session.scalars(select(Asset).where(Asset.user_id == "user_settled_twice")).all()) == 1


@pytest.mark.parametrize(
    ("reservation", "status", "type_"),
    [("unknown", 404, "not-found"), ("someone-elses", 404, "not-found"), ("video", 422, "validation-failed")],
)
def test_an_import_under_a_reservation_it_cannot_settle_is_refused_and_creates_nothing(
    client, auth_header, session, redis_client, settings, reservation, status, type_
):
    headers = auth_header("user_bad_reservation")
    reservation_id = {
        "unknown": lambda: str(uuid.uuid4()),
        "someone-elses": lambda: reserve_generations(client, auth_header()),
        "video": lambda: reserve_generations(client, headers, "video", 1),
    }[reservation]()
    waiting = len(queued(redis_client, settings, "images"))

    answer = client.post("/v1/assets/import", json=import_body(reservationId=reservation_id), headers=headers)

    assert_problem(answer, status, type_)
    assert session.scalars(select(Asset).where(Asset.user_id == "user_bad_reservation")).all() == []
    assert len(queued(redis_client, settings, "images")) == waiting


def test_an_import_by_a_user_with_no_storage_room_left_is_507_before_anything_is_queued(
    client, auth_header, session, redis_client, settings
):
    headers = auth_header("user_full_importer")
    reservation_id = reserve_generations(client, headers)
    session.get(User, "user_full_importer").storage_used_bytes = 500 * 1024 * 1024
    session.commit()
    waiting = len(queued(redis_client, settings, "images"))

    answer = client.post("/v1/assets/import", json=import_body(reservationId=reservation_id), headers=headers)

    assert_problem(answer, 507, "quota-exceeded")
    assert (answer.json["usedBytes"], answer.json["quotaBytes"]) == (500 * 1024 * 1024, 500 * 1024 * 1024)
    assert session.scalars(select(Asset).where(Asset.user_id == "user_full_importer")).all() == []
    assert len(queued(redis_client, settings, "images")) == waiting
    # The refused import settled nothing: the whole reservation can still be given back.
    refunded = client.post(
        "/v1/me/generations/refund", json={"reservationId": reservation_id}, headers=headers
    )
    assert refunded.json["refunded"] == 2


def test_an_import_by_a_user_with_some_room_left_is_queued_whatever_its_size_turns_out_to_be(
    client, auth_header, session
):
    headers = auth_header("user_nearly_full_importer")
    client.get("/v1/me", headers=headers)
    session.get(User, "user_nearly_full_importer").storage_used_bytes = 500 * 1024 * 1024 - 1
    session.commit()

    answer = client.post("/v1/assets/import", json=import_body(), headers=headers)

    assert answer.status_code == 202
