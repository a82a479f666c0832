"""Who may open a stream: bearer tokens, single-use tickets, 401s before any stream, CORS as the API."""

from __future__ import annotations

import json
import random
import time

import pytest
import requests

from models.reservations import reserve
from tests.conftest import build_services
from tests.web.events.sse import open_stream
from web.events.app import create_events_app

ORIGIN = "http://localhost:3000"


@pytest.fixture
def events_client(settings, engine, sessions):
    """The events app in this process (relay and hub not started: nothing here reaches a live stream)."""
    client = create_events_app(settings, build_services(settings, engine, sessions)).test_client()
    # An address of its own: refusals count against the caller's address, and other tests use 127.0.0.1.
    client.environ_base["REMOTE_ADDR"] = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    return client


def _assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_stream_without_a_credential_is_a_401_problem(events_client):
    _assert_unauthorized(events_client.get("/v1/events"))


def test_a_stream_with_a_bad_token_is_a_401_problem(events_client):
    _assert_unauthorized(events_client.get("/v1/events", headers={"Authorization": "Bearer not.a.jwt"}))


@pytest.mark.parametrize("ticket", ["", "x" * 43, "a" * 500, "../../etc"])
def test_a_stream_with_an_unknown_ticket_is_a_401_problem(events_client, ticket):
    _assert_unauthorized(events_client.get("/v1/events", query_string={"ticket": ticket}))


def test_a_ticket_needs_a_bearer_token(events_client):
    _assert_unauthorized(events_client.post("/v1/events/ticket"))


def test_a_ticket_is_opaque_and_expires_in_a_minute(events_client, auth_header):
    before = int(time.time() * 1000)
    response = events_client.post("/v1/events/ticket", headers=auth_header())

    assert response.status_code == 201
    assert set(response.json) == {"ticket", "expiresAt"}
    assert len(response.json["ticket"]) == 43 and "." not in response.json["ticket"]
    assert before + 59_000 <= response.json["expiresAt"] <= int(time.time() * 1000) + 61_000


def test_a_preflight_from_an_allowed_origin_may_send_last_event_id_and_authorization(events_client):
    response = events_client.options(
        "/v1/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )

    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "last-event-id" in allowed and "authorization" in allowed


def test_a_refusal_to_an_allowed_origin_carries_cors_headers_so_the_page_can_read_it(events_client):
    response = events_client.get("/v1/events", headers={"Origin": ORIGIN})

    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]


def test_an_origin_not_allowed_gets_no_cors_headers(events_client, auth_header):
    response = events_client.post(
        "/v1/events/ticket", headers={**auth_header(), "Origin": "https://evil.example"}
    )

    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.e2e
def test_a_ticket_opens_one_stream_once_for_its_user(events_server, new_user, committing):
    user_id, headers = new_user()
    ticket = requests.post(
        f"http://127.0.0.1:{events_server.port}/v1/events/ticket", headers=headers, timeout=5
    ).json()["ticket"]
    with open_stream(events_server.port, ticket=ticket) as stream:
        assert stream.status == 200
        with committing.begin() as session:
            reserve(session, user_id, "image", 1)
        assert stream.next().type == "usage"
    with open_stream(events_server.port, ticket=ticket) as again:
        assert again.status == 401
        assert again.headers["content-type"] == "application/problem+json"


@pytest.mark.e2e
def test_a_stream_with_a_bad_token_answers_401_before_any_event_on_the_real_server(events_server):
    with open_stream(events_server.port, {"Authorization": "Bearer nope"}) as stream:
        assert stream.status == 401
        body = stream.body_text()
    assert json.loads(body)["type"] == "unauthorized" and "retry:" not in body
