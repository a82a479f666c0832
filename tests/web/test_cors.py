"""Browsers on the allowed origins may call the API directly and read the headers the frontend needs."""

from __future__ import annotations

import pytest

from tests.conftest import build_services
from web.app import create_app

ALLOWED = "http://localhost:3000"
FRONTEND_READS = ["ETag", "Location", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Period"]


def header_set(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def preflight(
    client, origin: str, method: str = "PUT", headers: str = "If-Match, Authorization, Content-Type"
):
    return client.options(
        "/v1/projects/prj_anything/state",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_a_preflight_from_an_allowed_origin_permits_put_with_if_match_and_authorization(client):
    response = preflight(client, ALLOWED)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "put" in header_set(response.headers.get("Access-Control-Allow-Methods"))
    allowed_headers = header_set(response.headers.get("Access-Control-Allow-Headers"))
    assert {"if-match", "authorization", "content-type"} <= allowed_headers


def test_a_preflight_needs_no_credentials_and_is_not_refused_by_authentication(client):
    response = preflight(client, ALLOWED, method="DELETE", headers="Authorization")

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_response_to_an_allowed_origin_exposes_the_headers_the_frontend_reads(client, auth_header):
    response = client.get("/v1/me", headers={"Origin": ALLOWED, **auth_header()})

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = header_set(response.headers.get("Access-Control-Expose-Headers"))
    assert {name.lower() for name in FRONTEND_READS} <= exposed
    assert {"x-ratelimit-remaining", "ratelimit-policy", "ratelimit"} <= exposed


def test_a_problem_response_is_readable_by_an_allowed_origin(client):
    client.environ_base["REMOTE_ADDR"] = "198.18.7.7"

    response = client.get("/v1/me", headers={"Origin": ALLOWED})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "retry-after" in header_set(response.headers.get("Access-Control-Expose-Headers"))


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost:3001", "null"])
def test_a_disallowed_origin_gets_no_allow_origin(client, auth_header, origin):
    actual = client.get("/v1/me", headers={"Origin": origin, **auth_header()})
    preflighted = preflight(client, origin)

    assert "Access-Control-Allow-Origin" not in actual.headers
    assert "Access-Control-Allow-Origin" not in preflighted.headers


def test_origins_come_from_the_setting(settings, engine, sessions):
    custom = settings.model_copy(update={"cors_allowed_origins": ("https://canvas.example",)})
    client = create_app(custom, build_services(custom, engine, sessions)).test_client()

    assert preflight(client, "https://canvas.example").headers["Access-Control-Allow-Origin"] == (
        "https://canvas.example"
    )
    assert "Access-Control-Allow-Origin" not in preflight(client, ALLOWED).headers


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000.evil.example", "http://localhost:30000", "https://localhost:3000"]
)
def test_an_origin_that_merely_resembles_an_allowed_one_gets_nothing(client, auth_header, origin):
    actual = client.get("/v1/me", headers={"Origin": origin, **auth_header()})

    assert "Access-Control-Allow-Origin" not in actual.headers
    assert "Access-Control-Allow-Origin" not in preflight(client, origin).headers


def test_credentials_are_never_allowed_cross_origin(client, auth_header):
    # Identity is a bearer token the frontend attaches itself; no cookie ever needs to cross origins.
    actual = client.get("/v1/me", headers={"Origin": ALLOWED, **auth_header()})

    assert "Access-Control-Allow-Credentials" not in actual.headers
    assert "Access-Control-Allow-Credentials" not in preflight(client, ALLOWED).headers


@pytest.mark.parametrize(
    "stranger", ["https://bad.example", "https://2", "https://[2001:db8::1]x", "https://[2001:db8::1]:8443"]
)
def test_an_ipv6_literal_origin_admits_itself_and_nothing_it_would_match_as_a_pattern(
    settings, engine, sessions, stranger
):
    ipv6 = "https://[2001:db8::1]"
    custom = settings.model_copy(update={"cors_allowed_origins": (ipv6,)})
    client = create_app(custom, build_services(custom, engine, sessions)).test_client()

    assert preflight(client, ipv6).headers["Access-Control-Allow-Origin"] == ipv6
    assert "Access-Control-Allow-Origin" not in preflight(client, stranger).headers
