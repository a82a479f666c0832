"""Only trusted proxies' X-Forwarded-* headers count; behind an untrusted one the API says so once."""

from __future__ import annotations

import logging

from tests.conftest import build_services
from web.app import create_app


def _warnings(caplog) -> list[dict]:
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "forwarded_for_ignored"
    ]


def test_forwarded_requests_without_trusted_proxies_are_warned_about_once(client, caplog):
    caplog.set_level(logging.WARNING)

    client.get("/livez")
    assert _warnings(caplog) == []
    for address in ("203.0.113.7", "203.0.113.8", "203.0.113.9"):
        client.get("/livez", headers={"X-Forwarded-For": address})

    [warning] = _warnings(caplog)
    assert (warning["level"], warning["trusted_proxy_count"]) == ("warning", 0)
    assert "TRUSTED_PROXY_COUNT" in warning["detail"]


def test_forwarded_requests_through_trusted_proxies_are_not_warned_about(settings, engine, sessions, caplog):
    caplog.set_level(logging.WARNING)
    behind_one = settings.model_copy(update={"trusted_proxy_count": 1})
    client = create_app(behind_one, build_services(behind_one, engine, sessions)).test_client()

    client.get("/livez", headers={"X-Forwarded-For": "203.0.113.7"})

    assert _warnings(caplog) == []


def test_absolute_urls_carry_the_scheme_and_host_a_trusted_proxy_saw(settings, engine, sessions, auth_header):
    behind_one = settings.model_copy(update={"trusted_proxy_count": 1})
    client = create_app(behind_one, build_services(behind_one, engine, sessions)).test_client()
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}

    response = client.post("/v1/uploads/sessions", headers={**auth_header("user_proxied"), **forwarded})

    assert response.status_code == 201
    assert response.get_json()["companionEndpoint"].startswith("https://api.example/v1/uploads/t/")


def test_forwarded_scheme_and_host_from_an_untrusted_client_are_ignored(client, auth_header):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}

    response = client.post("/v1/uploads/sessions", headers={**auth_header("user_proxied"), **forwarded})

    assert response.status_code == 201
    assert response.get_json()["companionEndpoint"].startswith("http://localhost/v1/uploads/t/")
