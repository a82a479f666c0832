"""Rate limits over HTTP: the ip class, the decorator, headers, proxies, plans and Redis outages."""

from __future__ import annotations

import uuid

import pytest
import redis
from flask import Blueprint
from sqlalchemy import event

from models.generations import set_tier
from models.plans import MIB
from models.ratelimit import FAIL_OPEN
from tests.conftest import build_services
from tests.redis_server import free_port
from tests.web.uploading import upload
from tests.workers.media.hostile_media import good_jpeg
from web.api import _authenticate
from web.app import create_app
from web.ratelimit import rate_limited

IP_POLICY = "10;w=60, 30;w=3600, 100;w=86400"
IMPORT = {"sourceUrl": "https://media.example.com/generated.png", "assetType": "image"}


def address() -> str:
    """A client address of this test's own, so its ip budget starts full."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def make_app(settings, engine, sessions, redis_client=None, **changes):
    changed = settings.model_copy(update=changes)
    services = build_services(changed, engine, sessions)
    if redis_client is not None:
        services.redis = redis_client
    app = create_app(changed, services)
    uploads = Blueprint("probe", __name__, url_prefix="/v1/probe")
    uploads.before_request(_authenticate)

    @uploads.post("/upload")
    @rate_limited("upload")
    def upload():
        return {"ok": True}, 201

    app.register_blueprint(uploads)
    return app


@pytest.fixture
def probe_app(settings, engine, sessions):
    return make_app(settings, engine, sessions)


def test_unauthenticated_requests_are_limited_per_address_with_the_headers_the_frontend_reads(client):
    environ = {"REMOTE_ADDR": address()}
    answers = [client.get("/v1/me", environ_base=environ) for _ in range(11)]

    assert [a.status_code for a in answers] == [401] * 10 + [429]
    assert answers[3].headers["X-RateLimit-Remaining"] == "6"
    assert answers[3].headers["RateLimit-Policy"] == IP_POLICY
    refused = answers[10]
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "rate-limited"
    assert (refused.json["class"], refused.json["window"], refused.json["limit"]) == ("ip", "perMinute", 10)
    assert 55 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == "10"
    assert refused.headers["X-RateLimit-Period"] == "perMinute"
    assert refused.headers["RateLimit-Policy"] == IP_POLICY
    assert refused.headers["RateLimit"].startswith("limit=10, remaining=0, reset=")


def test_tokens_that_fail_verification_count_against_the_address(client):
    environ = {"REMOTE_ADDR": address()}
    guesses = [
        client.get("/v1/me", headers={"Authorization": f"Bearer guess.{i}.x"}, environ_base=environ)
        for i in range(11)
    ]

    assert [g.status_code for g in guesses] == [401] * 10 + [429]


def test_a_valid_token_is_not_held_back_by_its_address(client, auth_header):
    environ = {"REMOTE_ADDR": address()}
    for _ in range(10):
        client.get("/v1/me", environ_base=environ)

    assert client.get("/v1/me", environ_base=environ).status_code == 429
    assert client.get("/v1/me", headers=auth_header(), environ_base=environ).status_code == 200


def test_a_cors_preflight_is_answered_and_not_counted(client):
    environ = {"REMOTE_ADDR": address()}
    preflight = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    answers = [client.options("/v1/me", headers=preflight, environ_base=environ) for _ in range(12)]

    assert {a.status_code for a in answers} == {200}
    assert client.get("/v1/me", environ_base=environ).headers["X-RateLimit-Remaining"] == "9"


def test_a_spoofed_forwarded_for_is_ignored_without_trusted_proxies(client):
    environ = {"REMOTE_ADDR": address()}
    answers = [
        client.get("/v1/me", headers={"X-Forwarded-For": address()}, environ_base=environ) for _ in range(11)
    ]

    assert answers[-1].status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(settings, engine, sessions):
    client = make_app(settings, engine, sessions, trusted_proxy_count=1).test_client()
    proxy = {"REMOTE_ADDR": "192.0.2.1"}
    first, second = address(), address()
    for _ in range(10):
        client.get("/v1/me", headers={"X-Forwarded-For": f"6.6.6.6, {first}"}, environ_base=proxy)

    assert client.get("/v1/me", headers={"X-Forwarded-For": first}, environ_base=proxy).status_code == 429
    assert client.get("/v1/me", headers={"X-Forwarded-For": second}, environ_base=proxy).status_code == 401


def test_ipv6_clients_share_one_budget_per_64_prefix(client):
    prefix = f"2001:db8:{uuid.uuid4().int % 65535:x}:1"
    for host in range(10):
        client.get("/v1/me", environ_base={"REMOTE_ADDR": f"{prefix}::{host + 1:x}"})

    assert client.get("/v1/me", environ_base={"REMOTE_ADDR": f"{prefix}::ffff"}).status_code == 429


def test_a_decorated_view_counts_each_call_and_reports_the_tightest_window(probe_app, auth_header):
    client, headers = probe_app.test_client(), auth_header()
    answers = [client.post("/v1/probe/upload", headers=headers) for _ in range(21)]

    assert [a.status_code for a in answers] == [201] * 20 + [429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["19", "18", "17"]
    assert answers[0].headers["X-RateLimit-Period"] == "perMinute"
    assert answers[0].headers["RateLimit-Policy"] == "20;w=60, 100;w=3600"
    assert answers[0].headers["RateLimit"] == "limit=20, remaining=19, reset=60"
    assert answers[20].json["class"] == "upload"
    assert answers[20].json["window"] == "perMinute"


def test_uploads_and_imports_share_the_upload_class_which_refuses_before_reading_the_body(
    client, auth_header
):
    headers = auth_header()
    imports = [client.post("/v1/assets/import", json=IMPORT, headers=headers) for _ in range(10)]
    uploads = [upload(client, headers, good_jpeg(16, 16)) for _ in range(10)]

    # Over the plan's 25 MiB per file: were the body read first, this would be a 413.
    refused = upload(client, headers, b"\xff\xd8\xff" + b"\0" * (26 * MIB))

    assert [a.status_code for a in imports + uploads] == [202] * 10 + [201] * 10
    assert [a.headers["X-RateLimit-Remaining"] for a in (imports[0], uploads[-1])] == ["19", "0"]
    assert refused.status_code == 429
    assert (refused.json["class"], refused.json["window"]) == ("upload", "perMinute")
    assert refused.headers["RateLimit-Policy"] == "20;w=60, 100;w=3600"


def test_each_user_has_a_budget_of_their_own(probe_app, auth_header):
    client, first, second = probe_app.test_client(), auth_header(), auth_header()
    for _ in range(20):
        client.post("/v1/probe/upload", headers=first)

    assert client.post("/v1/probe/upload", headers=first).status_code == 429
    assert client.post("/v1/probe/upload", headers=second).status_code == 201


def test_a_pro_plan_gets_its_configured_limits_as_soon_as_the_tier_changes(
    settings, engine, sessions, auth_header, session
):
    overrides = {"pro": {"upload": {"perMinute": 30}}}
    client = make_app(settings, engine, sessions, rate_limit_overrides=overrides).test_client()
    headers = auth_header("user_upgrading")
    client.get("/v1/me", headers=headers)
    for _ in range(20):
        client.post("/v1/probe/upload", headers=headers)
    assert client.post("/v1/probe/upload", headers=headers).status_code == 429

    set_tier(session, "user_upgrading", "paid")
    session.commit()

    answer = client.post("/v1/probe/upload", headers=headers)
    assert answer.status_code == 201
    assert answer.headers["X-RateLimit-Limit"] == "30"


def closed() -> redis.Redis:
    return redis.Redis(port=free_port(), socket_connect_timeout=1, socket_timeout=1)


def test_with_redis_unreachable_fail_open_lets_requests_through_and_counts_them(
    settings, engine, sessions, auth_header
):
    client = make_app(settings, engine, sessions, closed(), rate_limit_fail_open=True).test_client()
    before = FAIL_OPEN.labels("upload")._value.get()

    answer = client.post("/v1/probe/upload", headers=auth_header())

    assert answer.status_code == 201
    assert "X-RateLimit-Remaining" not in answer.headers
    assert FAIL_OPEN.labels("upload")._value.get() == before + 1
    assert client.get("/v1/me", environ_base={"REMOTE_ADDR": address()}).status_code == 401
    assert f'iskra_rate_limit_fail_open_total{{class="upload"}} {before + 1}' in client.get("/metrics").text


def test_with_redis_unreachable_fail_closed_answers_503(settings, engine, sessions, auth_header):
    client = make_app(settings, engine, sessions, closed(), rate_limit_fail_open=False).test_client()

    answer = client.post("/v1/probe/upload", headers=auth_header())
    anonymous = client.get("/v1/me")

    for refused in (answer, anonymous):
        assert refused.status_code == 503
        assert refused.mimetype == "application/problem+json"
        assert refused.json["type"] == "rate-limiter-unavailable"


@pytest.mark.parametrize(("fail_open", "status", "counted"), [(True, 201, 1), (False, 503, 0)])
def test_a_redis_stopped_mid_test_is_handled_by_the_fail_open_setting(
    settings, engine, sessions, auth_header, private_redis, fail_open, status, counted
):
    app = make_app(settings, engine, sessions, private_redis.client, rate_limit_fail_open=fail_open)
    client, headers = app.test_client(), auth_header()
    assert client.post("/v1/probe/upload", headers=headers).headers["X-RateLimit-Remaining"] == "19"
    before = FAIL_OPEN.labels("upload")._value.get()

    private_redis.stop()
    after = client.post("/v1/probe/upload", headers=headers)

    assert after.status_code == status
    assert FAIL_OPEN.labels("upload")._value.get() == before + counted
    if not fail_open:
        assert after.json["type"] == "rate-limiter-unavailable"


@pytest.mark.parametrize(("overrides", "queries"), [({}, 0), ({"pro": {"upload": {"perMinute": 30}}}, 1)])
def test_the_plan_is_read_only_when_some_plan_has_its_own_numbers(
    settings, engine, sessions, connection, auth_header, overrides, queries
):
    client = make_app(settings, engine, sessions, rate_limit_overrides=overrides).test_client()
    statements: list[str] = []
    event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))

    assert client.post("/v1/probe/upload", headers=auth_header()).status_code == 201
    assert len([sql for sql in statements if "users" in sql]) == queries
