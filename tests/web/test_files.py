"""GET /files/<token>: local-backend downloads with Range, conditional GET, HEAD and signed expiry."""

from __future__ import annotations

import dataclasses
import io
import time
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer

from models.storage.s3 import S3Storage
from web.services import services

KEY = "renditions/0b7f1f9e-3f2a-4d5e-9b8a-1c2d3e4f5a6b/preview.webp"
BODY = bytes(range(256)) * 4


@pytest.fixture
def url(app: Flask) -> str:
    with app.app_context():
        services().storage.put(KEY, io.BytesIO(BODY), content_type="image/webp")
        return services().storage.url(KEY, expires_in=300)


def _get(client: FlaskClient, url: str, **headers: str):
    with client.get(url, headers=headers) as response:
        response.get_data()
        return response


def test_a_signed_link_serves_the_file_with_its_type_length_etag_and_private_caching(
    client: FlaskClient, url: str
) -> None:
    response = _get(client, url)
    assert response.status_code == 200
    assert response.get_data() == BODY
    assert response.headers["Content-Type"] == "image/webp"
    assert response.headers["Content-Length"] == str(len(BODY))
    assert response.headers["ETag"].strip('"')
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.cache_control.private
    assert not response.cache_control.public
    assert 0 < response.cache_control.max_age <= 300
    assert response.cache_control.immutable
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_api_link_is_cached_privately_and_immutably_for_the_hour_or_more_it_has_left(
    app: Flask, client: FlaskClient, url: str
) -> None:
    with app.app_context():
        link = services().signed_url(KEY, "image/webp")
        assert services().signed_url(KEY, "image/webp") == link
    response = _get(client, link)
    assert response.status_code == 200
    private, max_age, immutable = response.headers["Cache-Control"].split(", ")
    assert (private, immutable) == ("private", "immutable")
    # SIGNED_URL_TTL_SECONDS is an hour: the link lives until the end of the next clock hour.
    assert 3600 < int(max_age.removeprefix("max-age=")) <= 7200


def test_a_range_request_gets_206_with_exactly_those_bytes(client: FlaskClient, url: str) -> None:
    response = _get(client, url, Range="bytes=10-19")
    assert response.status_code == 206
    assert response.get_data() == BODY[10:20]
    assert response.headers["Content-Range"] == f"bytes 10-19/{len(BODY)}"
    assert response.headers["Content-Length"] == "10"


def test_a_suffix_range_gets_the_tail(client: FlaskClient, url: str) -> None:
    response = _get(client, url, Range="bytes=-5")
    assert (response.status_code, response.get_data()) == (206, BODY[-5:])


def test_a_range_past_the_end_gets_416(client: FlaskClient, url: str) -> None:
    response = _get(client, url, Range=f"bytes={len(BODY) + 10}-")
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert BODY[:16] not in response.get_data()


def test_a_matching_if_none_match_gets_304_without_a_body(client: FlaskClient, url: str) -> None:
    etag = _get(client, url).headers["ETag"]
    response = _get(client, url, **{"If-None-Match": etag})
    assert response.status_code == 304
    assert response.get_data() == b""


def test_head_reports_the_length_without_a_body(client: FlaskClient, url: str) -> None:
    with client.head(url) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(len(BODY))
        assert response.get_data() == b""


def test_a_link_may_override_the_content_type(app: Flask, client: FlaskClient, url: str) -> None:
    with app.app_context():
        override = services().storage.url(KEY, expires_in=60, content_type="application/octet-stream")
    assert _get(client, override).headers["Content-Type"] == "application/octet-stream"


def test_a_tampered_link_is_refused_with_problem_json(client: FlaskClient, url: str) -> None:
    response = _get(client, url[:-3] + "abc")
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "invalid-download-link"


def test_an_expired_link_is_refused(app: Flask, client: FlaskClient, url: str) -> None:
    with app.app_context():
        expired = services().storage.url(KEY, expires_in=1)
    time.sleep(1.1)
    response = _get(client, expired)
    assert response.status_code == 403
    assert response.get_json()["detail"] == "The download link has expired"


def test_a_link_to_a_deleted_file_gets_404(app: Flask, client: FlaskClient, url: str) -> None:
    with app.app_context():
        services().storage.delete(KEY)
    response = _get(client, url)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_route_serves_nothing_when_storage_is_s3(app: Flask, client: FlaskClient, url: str) -> None:
    iskra = app.extensions["iskra"]
    app.extensions["iskra"] = dataclasses.replace(iskra, storage_override=S3Storage(None, "bucket"))
    assert _get(client, url).status_code == 404


def test_a_symlink_planted_under_the_media_root_is_not_followed(
    app: Flask, client: FlaskClient, tmp_path
) -> None:
    outside = tmp_path / "outside-the-root.txt"
    outside.write_bytes(b"private bytes outside the media root")
    key = f"renditions/{uuid.uuid4()}/thumbnail.webp"
    with app.app_context():
        storage = services().storage
        storage.path(key).parent.mkdir(parents=True)
        storage.path(key).symlink_to(outside)
        link = storage.url(key, expires_in=300)
    try:
        response = _get(client, link)
    finally:
        storage.path(key).unlink()

    assert response.status_code == 404
    assert b"private bytes" not in response.get_data()


def test_a_link_naming_a_directory_is_404_not_a_crash(app: Flask, client: FlaskClient, url: str) -> None:
    with app.app_context():
        directory = services().storage.url(KEY.rsplit("/", 1)[0], expires_in=300)

    response = _get(client, directory)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "key",
    [
        "../../../../etc/passwd",
        "/etc/passwd",
        "renditions/../../x",
        ".meta/x.json",
        "a/./b",
        "a\x00b",
        "a\\b",
    ],
)
def test_a_validly_signed_link_to_an_unsafe_key_is_refused(settings, client: FlaskClient, key: str) -> None:
    # As if the signing secret leaked: the key itself must still stay inside the media root.
    serializer = URLSafeSerializer(
        settings.signing_secret.get_secret_value(), salt="iskra.storage.local-download"
    )
    token = serializer.dumps({"k": key, "e": int(time.time()) + 300})

    response = _get(client, f"/files/{token}")

    assert response.status_code == 403
    assert response.get_json()["type"] == "invalid-download-link"


@pytest.mark.parametrize(
    "path",
    [
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/%00",
        "/files/" + "A" * 5000,
    ],
)
def test_traversal_shaped_download_paths_are_refused_as_problems(client: FlaskClient, path: str) -> None:
    response = _get(client, path)

    assert response.status_code in (403, 404)
    assert response.mimetype == "application/problem+json"
