"""Every refusal and failure leaves as RFC 9457 problem+json with a stable `type`."""

from __future__ import annotations

import logging
import socket

import pytest
from flask import request
from pydantic import Field
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from models.errors import RateLimited
from tests.conftest import build_services
from web.app import create_app
from web.openapi import api
from web.schemas import Body

BODY_LIMIT = 1024


class Greeting(Body):
    """A tiny validated body for the test-only route."""

    display_name: str = Field(min_length=1, max_length=10)


@pytest.fixture
def error_app(settings, engine, sessions):
    """The real app plus a few test-only routes that fail in known ways."""
    app = create_app(settings, build_services(settings, engine, sessions))
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT

    @app.post("/test/body-length")
    def body_length():
        return {"bytes": len(request.get_data())}

    @app.post("/test/json-echo")
    def json_echo():
        return {"echo": request.get_json()}

    @app.get("/test/boom")
    def boom():
        raise RuntimeError("the database password is hunter2")

    @app.get("/test/slow-down")
    def slow_down():
        error = RateLimited("Too many uploads per minute.", window="perMinute", limit=20)
        error.headers["Retry-After"] = "42"
        raise error

    @app.post("/test/greeting")
    @api.validate(json=Greeting)
    def greeting():
        return {"hello": request.context.json.display_name}

    return app


@pytest.fixture
def error_client(error_app):
    return error_app.test_client()


def assert_problem(response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert (body["type"], body["status"]) == (type_, status)
    assert body["title"]
    return body


def test_an_unknown_route_is_a_not_found_problem(error_client):
    assert_problem(error_client.get("/no/such/route"), 404, "not-found")


def test_a_wrong_method_is_a_method_not_allowed_problem_with_allow(error_client):
    response = error_client.delete("/livez")

    assert_problem(response, 405, "method-not-allowed")
    assert {method.strip() for method in response.headers["Allow"].split(",")} >= {"GET", "HEAD"}


def test_a_body_over_the_limit_is_a_payload_too_large_problem(error_client):
    response = error_client.post("/test/body-length", data=b"x" * (BODY_LIMIT + 1))

    assert_problem(response, 413, "payload-too-large")


def test_a_body_within_the_limit_is_read(error_client):
    assert error_client.post("/test/body-length", data=b"x" * BODY_LIMIT).json == {"bytes": BODY_LIMIT}


def test_malformed_json_read_by_a_view_is_a_bad_request_problem(error_client):
    response = error_client.post("/test/json-echo", data="{not json", content_type="application/json")

    assert_problem(response, 400, "bad-request")


def test_an_unexpected_exception_is_a_500_problem_that_leaks_nothing_and_is_logged(error_client, caplog):
    with caplog.at_level(logging.ERROR):
        response = error_client.get("/test/boom")

    body = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert logged, "the failure was not logged"
    assert logged[-1].exc_info[0] is RuntimeError
    assert body["detail"] == "Something went wrong on our side."


def test_a_domain_error_keeps_its_extra_members_and_headers(error_client):
    response = error_client.get("/test/slow-down")

    body = assert_problem(response, 429, "rate-limited")
    assert (body["window"], body["limit"], body["detail"]) == (
        "perMinute",
        20,
        "Too many uploads per minute.",
    )
    assert response.headers["Retry-After"] == "42"


@pytest.mark.parametrize(
    "payload",
    [
        {"displayName": ""},
        {"displayName": "x" * 11},
        {},
        {"displayName": "ok", "extra": 1},
        ["not", "an", "object"],
    ],
    ids=["too-short", "too-long", "missing", "unknown-key", "not-an-object"],
)
def test_a_body_that_breaks_its_schema_is_a_validation_problem(error_client, payload):
    response = error_client.post("/test/greeting", json=payload)

    body = assert_problem(response, 422, "validation-failed")
    assert body["errors"]


def test_a_body_that_is_not_json_at_all_is_a_problem_not_a_crash(error_client):
    response = error_client.post("/test/greeting", data="{not json", content_type="application/json")

    # spectree reads an unparsable JSON body as empty, so the schema's required fields are what is reported.
    assert_problem(response, 422, "validation-failed")


def test_a_body_that_matches_its_schema_reaches_the_view(error_client):
    response = error_client.post("/test/greeting", json={"displayName": "Ada"})

    assert (response.status_code, response.json) == (200, {"hello": "Ada"})


JSON_ENDPOINTS = [
    ("post", "/v1/projects"),
    ("patch", "/v1/projects/{project}"),
    ("put", "/v1/projects/{project}/state"),
    ("post", "/v1/assets/import"),
    ("post", "/v1/me/generations/reserve"),
    ("post", "/v1/me/generations/refund"),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path in JSON_ENDPOINTS]


def send_json_body(client, headers, method: str, path: str, body: bytes):
    """Send `body` as application/json to one of JSON_ENDPOINTS, on a project of the caller's own."""
    project = client.post("/v1/projects", headers=headers, json={"name": "Target"}).json["id"]
    call = getattr(client, method)
    return call(path.format(project=project), headers=headers, data=body, content_type="application/json")


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"name": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001],
    ids=["arrays", "objects"],
)
@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
def test_json_nested_too_deeply_is_a_client_problem_on_every_json_endpoint(
    client, auth_header, method, path, body
):
    response = send_json_body(client, auth_header(), method, path, body)

    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] in ("bad-request", "validation-failed")


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_json_body_over_the_cap_is_refused_with_413_on_every_json_endpoint(
    client, auth_header, settings, method, path
):
    body = b'{"name": "' + b"x" * settings.max_project_state_bytes + b'"}'

    assert_problem(send_json_body(client, auth_header(), method, path, body), 413, "payload-too-large")


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_body_that_is_not_utf8_is_a_client_problem_on_every_json_endpoint(
    client, auth_header, method, path
):
    response = send_json_body(client, auth_header(), method, path, b'{"name": "\xff\xfe", "type": "\xc3"}')

    assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("form_type", ["application/x-www-form-urlencoded", "multipart/form-data"])
@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS, ids=ENDPOINT_IDS)
def test_a_form_sent_to_a_json_endpoint_is_a_validation_problem_not_a_crash(
    client, auth_header, method, path, form_type
):
    headers = auth_header()
    project = client.post("/v1/projects", headers=headers, json={"name": "Target"}).json["id"]
    call = getattr(client, method)

    response = call(
        path.format(project=project), headers=headers, data={"type": "image"}, content_type=form_type
    )

    assert_problem(response, 422, "validation-failed")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_a_database_that_cannot_be_reached_is_a_503_problem_not_a_500(settings, auth_header, caplog):
    unreachable = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/iskra"}
    )
    engine = create_engine(unreachable.database_url, connect_args={"connect_timeout": 2})
    client = create_app(unreachable, build_services(unreachable, engine, sessionmaker(engine))).test_client()

    with caplog.at_level(logging.WARNING):
        response = client.get("/v1/me", headers=auth_header())

    assert_problem(response, 503, "service-unavailable")
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
    engine.dispose()


def test_a_database_connection_killed_mid_session_is_a_503_problem(settings, engine, auth_header):
    with engine.connect() as connection:
        connection.begin()
        sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        client = create_app(settings, build_services(settings, engine, sessions)).test_client()
        backend = connection.scalar(text("SELECT pg_backend_pid()"))
        with engine.connect() as killer:
            killer.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

        response = client.get("/v1/me", headers=auth_header())

    assert_problem(response, 503, "service-unavailable")
