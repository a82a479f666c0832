"""The console's routes: its static page and files, its configuration, and development tokens."""

from __future__ import annotations

import pytest

from tests.conftest import build_services
from web.app import create_app
from web.errors import PROBLEM_TYPE


@pytest.fixture
def production_client(settings, engine, sessions):
    production = settings.model_copy(
        update={
            "environment": "production",
            "auth_mode": "clerk",
            "clerk_jwt_issuer_domain": "https://clerk.iskra.example",
            "signing_secret": settings.signing_secret,
        }
    )
    return create_app(production, build_services(production, engine, sessions)).test_client()


def test_the_page_is_served_with_a_strict_policy_and_revalidated_on_every_load(client):
    page = client.get("/console/", buffered=True)

    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'<script type="module" src="main.js">' in page.data
    policy = dict(part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self' http://localhost:8001"
    assert page.headers["Cache-Control"] == "no-cache"
    assert (
        client.get("/console/", buffered=True, headers={"If-None-Match": page.headers["ETag"]}).status_code
        == 304
    )


def test_the_scripts_are_javascript_modules_and_nothing_outside_the_folder_is_served(client):
    script = client.get("/console/main.js", buffered=True)

    assert script.status_code == 200 and script.mimetype in ("text/javascript", "application/javascript")
    assert b"from './api.js'" in script.data
    assert client.get("/console/console.css", buffered=True).mimetype == "text/css"
    assert client.get("/console/../app.py").status_code == 404
    assert client.get("/console/nothing.js").status_code == 404


def test_every_file_of_the_page_loads_only_from_the_console_itself(client):
    page = client.get("/console/", buffered=True).data.decode()

    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    for name in ("main.js", "api.js", "assets.js", "events.js", "projects.js", "uploads.js", "usage.js"):
        source = client.get(f"/console/{name}", buffered=True).data.decode()
        assert "import(" not in source and "https://" not in source.split("thumbhash")[0], name


def test_the_config_names_the_event_stream_on_the_apis_host_and_events_port(client):
    assert client.get("/console/config", base_url="http://127.0.0.1:8000").json == {
        "eventsUrl": "http://127.0.0.1:8001",
        "devTokens": True,
    }
    assert (
        client.get("/console/config", base_url="http://[::1]:8000").json["eventsUrl"] == "http://[::1]:8001"
    )


def test_a_configured_events_url_is_what_the_page_is_told_and_what_its_policy_allows(
    settings, engine, sessions
):
    proxied = settings.model_copy(update={"events_public_url": "https://api.iskra.example"})
    client = create_app(proxied, build_services(proxied, engine, sessions)).test_client()

    assert client.get("/console/config").json["eventsUrl"] == "https://api.iskra.example"
    assert (
        "connect-src 'self' https://api.iskra.example"
        in client.get("/console/", buffered=True).headers["Content-Security-Policy"]
    )


def test_on_s3_the_policy_allows_the_stores_origin_for_parts_and_thumbnails(settings, engine, sessions):
    on_s3 = settings.model_copy(
        update={"storage_backend": "s3", "s3_endpoint_url": "http://127.0.0.1:9333/some/path"}
    )
    client = create_app(on_s3, build_services(on_s3, engine, sessions)).test_client()

    policy = client.get("/console/", buffered=True).headers["Content-Security-Policy"]

    assert "img-src 'self' data: blob: http://127.0.0.1:9333;" in policy
    assert "connect-src 'self' http://localhost:8001 http://127.0.0.1:9333;" in policy


def test_a_dev_token_is_issued_in_development_and_the_api_accepts_it(client):
    issued = client.post("/console/dev-token", json={"userId": "user_console"})

    assert issued.status_code == 201
    assert issued.json["userId"] == "user_console" and issued.json["expiresAt"] > 0
    me = client.get("/v1/me", headers={"Authorization": f"Bearer {issued.json['token']}"})
    assert me.status_code == 200 and me.json["userId"] == "user_console"


def test_a_dev_token_without_a_user_id_is_for_the_local_user(client):
    assert client.post("/console/dev-token", json={}).json["userId"] == "user_local"


def test_a_dev_token_for_a_malformed_user_id_is_refused(client):
    refused = client.post("/console/dev-token", json={"userId": "user with spaces"})

    assert refused.status_code == 422 and refused.mimetype == PROBLEM_TYPE


def test_production_issues_no_dev_tokens_and_says_so_in_its_config(production_client):
    refused = production_client.post("/console/dev-token", json={"userId": "user_console"})

    assert refused.status_code == 404 and refused.mimetype == PROBLEM_TYPE
    assert refused.json["type"] == "not-found" and "token" not in refused.json
    assert production_client.get("/console/config").json["devTokens"] is False


def test_the_console_routes_are_documented_and_its_files_are_not(client):
    paths = client.get("/openapi.json").json["paths"]

    assert set(paths["/console/config"]) == {"get"} and set(paths["/console/dev-token"]) == {"post"}
    assert paths["/console/dev-token"]["post"]["security"] == []
    assert not [path for path in paths if path.startswith("/console/") and "{" in path]
