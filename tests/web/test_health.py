"""/livez and /readyz for load balancers: readiness names the dependency that is down."""

from __future__ import annotations

import socket

import pytest
import redis
from sqlalchemy import create_engine

from tests.conftest import build_services
from web.app import create_app


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def health_client(settings, engine, sessions):
    """A client for an app whose database, Redis or storage can be pointed somewhere broken."""

    def build(engine_override=None, redis_url: str | None = None, **changes):
        changed = settings.model_copy(update=changes)
        services = build_services(changed, engine_override or engine, sessions)
        if redis_url:
            services.redis = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
        return create_app(changed, services).test_client()

    return build


def test_livez_answers_ok(client):
    response = client.get("/livez")

    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_is_ok_when_database_redis_broker_and_storage_answer(health_client, broker_settings):
    response = health_client(celery_broker_url=broker_settings.celery_broker_url).get("/readyz")

    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok", "broker": "ok", "storage": "ok"}


def test_readyz_names_the_broker_when_it_is_unreachable(health_client):
    response = health_client(celery_broker_url=f"redis://127.0.0.1:{closed_port()}/0").get("/readyz")

    assert response.status_code == 503
    assert response.json["type"] == "not-ready"
    checks = response.json["checks"]
    assert checks["broker"].startswith("error")
    assert (checks["database"], checks["redis"], checks["storage"]) == ("ok", "ok", "ok")


def test_readyz_names_the_broker_when_rabbitmq_answers_but_refuses_the_service(
    health_client, rabbitmq_settings
):
    refused = rabbitmq_settings.celery_broker_url.rsplit("/", 1)[0] + "/iskra-no-such-vhost"

    response = health_client(celery_broker_url=refused).get("/readyz")

    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["broker"].startswith("error")
    assert (checks["database"], checks["redis"], checks["storage"]) == ("ok", "ok", "ok")


def test_readyz_names_redis_when_redis_is_unreachable(health_client):
    client = health_client(redis_url=f"redis://127.0.0.1:{closed_port()}/0")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "not-ready"
    checks = response.json["checks"]
    assert checks["redis"].startswith("error")
    assert (checks["database"], checks["broker"], checks["storage"]) == ("ok", "ok", "ok")


def test_readyz_names_the_database_when_it_is_unreachable(health_client):
    dead = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/nowhere")
    try:
        response = health_client(engine_override=dead).get("/readyz")
    finally:
        dead.dispose()

    assert response.status_code == 503
    assert response.json["type"] == "not-ready"
    checks = response.json["checks"]
    assert checks["database"].startswith("error")
    assert (checks["redis"], checks["storage"]) == ("ok", "ok")


def test_readyz_names_storage_when_its_root_is_not_writable(health_client, tmp_path):
    blocker = tmp_path / "a-file-not-a-directory"
    blocker.write_bytes(b"")

    response = health_client(storage_local_root=blocker / "media").get("/readyz")

    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["storage"].startswith("error")
    assert (checks["database"], checks["redis"]) == ("ok", "ok")


def test_readyz_does_not_leak_connection_details(health_client):
    port = closed_port()
    response = health_client(redis_url=f"redis://:hunter2@127.0.0.1:{port}/0").get("/readyz")

    assert "hunter2" not in response.get_data(as_text=True)
    assert str(port) not in response.get_data(as_text=True)
