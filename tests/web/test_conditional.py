"""ETag and If-None-Match on asset and project reads, and links that stay the same all clock hour."""

from __future__ import annotations

import io
import json
import time
import uuid

import pytest
import requests

from models.tables import Asset
from tests.conftest import build_services
from tests.web.test_assets import make_assets
from tests.web.test_projects import add_asset, canvas, element, put_state
from web.app import create_app


@pytest.fixture
def asset(session):
    made = make_assets(session, "user_etag", 1)[0]
    made.thumbnail_key = f"renditions/{made.id}/thumbnail.webp"
    session.commit()
    return made


def test_an_asset_read_twice_is_byte_identical_with_the_same_etag(client, auth_header, asset):
    headers = auth_header("user_etag")

    first = client.get(f"/v1/assets/{asset.id}", headers=headers)
    time.sleep(1.1)  # links dated by the clock would differ by now
    second = client.get(f"/v1/assets/{asset.id}", headers=headers)

    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    assert first.headers["ETag"] == second.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"


def test_on_s3_an_asset_read_twice_gives_the_same_presigned_links_and_they_serve(
    s3_settings, engine, sessions, auth_header, asset
):
    app = create_app(s3_settings, build_services(s3_settings, engine, sessions))
    app.extensions["iskra"].storage.put(
        asset.thumbnail_key, io.BytesIO(b"RIFF-thumb"), content_type="image/webp"
    )
    client, headers = app.test_client(), auth_header("user_etag")

    first = client.get(f"/v1/assets/{asset.id}", headers=headers)
    time.sleep(1.1)  # a presign dated by the clock would carry another X-Amz-Date by now
    second = client.get(f"/v1/assets/{asset.id}", headers=headers)

    link = first.json["urls"]["thumbnail"]
    assert link.startswith(s3_settings.s3_endpoint_url) and "X-Amz-Date=" in link
    assert second.json["urls"] == first.json["urls"]
    assert second.headers["ETag"] == first.headers["ETag"]
    fetched = requests.get(link, timeout=10)
    assert (fetched.status_code, fetched.content) == (200, b"RIFF-thumb")


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(client, auth_header, asset):
    headers = auth_header("user_etag")
    etag = client.get(f"/v1/assets/{asset.id}", headers=headers).headers["ETag"]

    unchanged = client.get(f"/v1/assets/{asset.id}", headers={**headers, "If-None-Match": etag})
    weakened = client.get(f"/v1/assets/{asset.id}", headers={**headers, "If-None-Match": f"W/{etag}"})
    other = client.get(f"/v1/assets/{asset.id}", headers={**headers, "If-None-Match": '"nope", "other"'})

    assert (unchanged.status_code, unchanged.data, unchanged.headers["ETag"]) == (304, b"", etag)
    assert weakened.status_code == 304  # If-None-Match compares weakly, so a proxy's W/ still matches
    assert other.status_code == 200 and other.json["id"] == str(asset.id)


def test_an_asset_whose_body_changed_answers_200_with_a_new_etag(client, auth_header, asset, session):
    headers = auth_header("user_etag")
    etag = client.get(f"/v1/assets/{asset.id}", headers=headers).headers["ETag"]
    asset.preview_key = f"renditions/{asset.id}/preview.webp"
    session.commit()

    response = client.get(f"/v1/assets/{asset.id}", headers={**headers, "If-None-Match": etag})

    assert response.status_code == 200
    assert response.json["urls"]["preview"].startswith("/files/")
    assert response.headers["ETag"] != etag


def test_the_next_clock_hour_brings_new_links_and_so_a_new_etag(client, auth_header, asset, monkeypatch):
    headers = auth_header("user_etag")
    now = time.time()
    this_hour = client.get(f"/v1/assets/{asset.id}", headers=headers)
    monkeypatch.setattr("web.services.time.time", lambda: now + 3600)

    next_hour = client.get(
        f"/v1/assets/{asset.id}", headers={**headers, "If-None-Match": this_hour.headers["ETag"]}
    )

    assert next_hour.status_code == 200
    assert next_hour.json["urls"]["thumbnail"] != this_hour.json["urls"]["thumbnail"]
    assert next_hour.headers["ETag"] != this_hour.headers["ETag"]


def test_someone_elses_asset_is_404_whatever_if_none_match_says(client, auth_header, asset):
    etag = client.get(f"/v1/assets/{asset.id}", headers=auth_header("user_etag")).headers["ETag"]

    response = client.get(
        f"/v1/assets/{asset.id}", headers={**auth_header("user_not_etag"), "If-None-Match": etag}
    )

    assert response.status_code == 404


@pytest.fixture
def owner(client, auth_header):
    headers = auth_header("user_project_etag")
    first = client.get("/v1/projects", headers=headers).json["items"][0]
    return headers, "user_project_etag", first["id"]


def test_a_project_read_is_tagged_by_its_revision_and_body_and_304s_when_unchanged(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a")))

    first = client.get(f"/v1/projects/{project_id}", headers=headers)
    again = client.get(
        f"/v1/projects/{project_id}", headers={**headers, "If-None-Match": first.headers["ETag"]}
    )

    assert first.headers["ETag"].startswith('"1-')
    assert (again.status_code, again.data) == (304, b"")


def test_a_rename_keeps_the_revision_but_changes_the_read_and_its_etag(client, owner):
    headers, _, project_id = owner
    etag = client.get(f"/v1/projects/{project_id}", headers=headers).headers["ETag"]
    client.patch(f"/v1/projects/{project_id}", headers=headers, json={"name": "Renamed"})

    response = client.get(f"/v1/projects/{project_id}", headers={**headers, "If-None-Match": etag})

    assert response.status_code == 200
    assert (response.json["name"], response.json["revision"]) == ("Renamed", 0)
    assert response.headers["ETag"] != etag and response.headers["ETag"].startswith('"0-')


def test_an_asset_getting_its_thumbnail_changes_the_project_read(client, owner, session):
    headers, user_id, project_id = owner
    asset_id = add_asset(session, user_id, "image")
    put_state(client, headers, project_id, canvas(element("a", assetId=asset_id)))
    before = client.get(f"/v1/projects/{project_id}", headers=headers)
    session.execute(
        Asset.__table__.update()
        .where(Asset.id == uuid.UUID(asset_id))
        .values(thumbnail_key=f"renditions/{asset_id}/thumbnail.webp")
    )
    session.commit()

    after = client.get(
        f"/v1/projects/{project_id}", headers={**headers, "If-None-Match": before.headers["ETag"]}
    )

    assert before.json["assetThumbnails"] == {}
    assert after.status_code == 200
    assert list(after.json["assetThumbnails"]) == [asset_id]


def test_the_etag_of_a_read_serves_as_if_match_for_the_next_save(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas())
    read = client.get(f"/v1/projects/{project_id}", headers=headers).headers["ETag"]

    saved = put_state(client, headers, project_id, canvas(element("a")), **{"If-Match": read})
    stale = put_state(client, headers, project_id, canvas(), **{"If-Match": read})

    assert saved.status_code == 200 and saved.headers["ETag"] == '"2"'
    assert stale.status_code == 412


def test_project_thumbnail_links_stay_the_same_within_the_hour(client, owner, session):
    headers, user_id, project_id = owner
    asset_id = add_asset(session, user_id, "image", thumbnail_key=f"renditions/{uuid.uuid4()}/thumbnail.webp")
    put_state(client, headers, project_id, canvas(element("a", assetId=asset_id)))

    first = client.get(f"/v1/projects/{project_id}", headers=headers).json
    time.sleep(1.1)
    second = client.get(f"/v1/projects/{project_id}", headers=headers).json

    assert json.dumps(first["assetThumbnails"]) == json.dumps(second["assetThumbnails"])
