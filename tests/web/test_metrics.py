"""/metrics: requests by route template, database and broker gauges, totals across gunicorn workers."""

from __future__ import annotations

import base64
import re
import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from core import taskqueue
from models.tables import Asset
from models.users import ensure_user
from tests.conftest import build_services
from tests.processes import BIN, ROOT, running, settings_env, wait_until
from tests.queues import queue_key, take
from web.app import create_app
from workers import metrics as _task_metrics  # noqa: F401 - registers them, as a worker process does

OPERATIONS_DOC = ROOT / "docs" / "operations.md"


def _samples(body: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _requests(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("iskra_http_requests_total", labels) or 0.0


def test_requests_are_counted_by_route_template_method_and_status(client, auth_header):
    before_ok, before_401 = _requests("/livez", "GET", "200"), _requests("/v1/me", "GET", "401")

    client.get("/livez")
    client.get("/livez")
    client.get("/v1/me")

    assert _requests("/livez", "GET", "200") == before_ok + 2
    assert _requests("/v1/me", "GET", "401") == before_401 + 1


def test_paths_that_match_no_route_share_one_label(client):
    before = _requests("<unmatched>", "GET", "404")

    client.get(f"/no/such/{uuid.uuid4().hex}")

    assert _requests("<unmatched>", "GET", "404") == before + 1


def test_request_latency_is_observed_per_route(client):
    labels = {"route": "/livez", "method": "GET"}
    before = REGISTRY.get_sample_value("iskra_http_request_duration_seconds_count", labels) or 0.0

    client.get("/livez")

    assert REGISTRY.get_sample_value("iskra_http_request_duration_seconds_count", labels) == before + 1


def test_metrics_report_assets_by_status_and_storage_by_tier(client, session):
    user = ensure_user(session, f"user_{uuid.uuid4().hex[:8]}")
    user.storage_used_bytes = 1234
    for status in ("ready", "ready", "failed"):
        asset_id = uuid.uuid4()
        session.add(
            Asset(id=asset_id, user_id=user.user_id, type="image", storage_key=f"originals/x/{asset_id}.png",
                  mime_type="image/png", size_bytes=1, status=status)
        )  # fmt: skip
    session.commit()

    samples = _samples(client.get("/metrics").get_data(as_text=True))

    assert samples[("iskra_assets", frozenset({("status", "ready")}))] >= 2
    assert samples[("iskra_assets", frozenset({("status", "failed")}))] >= 1
    assert samples[("iskra_storage_used_bytes", frozenset({("tier", "free")}))] >= 1234
    assert samples[("iskra_state_source_up", frozenset({("source", "database")}))] == 1


def test_queue_depth_is_the_length_of_the_prefixed_redis_list_a_waiting_task_sits_in(
    client, settings, redis_client
):
    marker = str(uuid.uuid4())
    before = redis_client.llen(queue_key(settings, "videos"))
    taskqueue.send(taskqueue.make_client(settings), taskqueue.MAKE_VIDEO_RENDITIONS, marker)
    try:
        # The message sits exactly where the gauge looks: `<global_keyprefix>videos`.
        assert redis_client.llen(queue_key(settings, "videos")) == before + 1
        samples = _samples(client.get("/metrics").get_data(as_text=True))
        assert samples[("iskra_queue_depth", frozenset({("queue", "videos")}))] == before + 1
    finally:
        take(redis_client, settings, "videos", taskqueue.MAKE_VIDEO_RENDITIONS, marker)


def _documented_metrics() -> set[str]:
    """The metric names in the table of the operations doc."""
    table = OPERATIONS_DOC.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(iskra_[a-z_]+)` \|", table, flags=re.MULTILINE))


def test_the_operations_doc_lists_exactly_the_metrics_that_metrics_exports(client):
    body = client.get("/metrics").get_data(as_text=True)

    # `*_created` are the timestamps prometheus_client adds to counters and histograms in one process.
    exported = {
        name
        for name in re.findall(r"^# TYPE (iskra_[a-z_]+) ", body, flags=re.MULTILINE)
        if not name.endswith("_created")
    }
    assert "iskra_tasks_total" in exported and "iskra_queue_depth" in exported
    assert _documented_metrics() == exported


def test_a_broken_gauge_source_is_reported_not_raised(app, client):
    app.extensions["iskra"].settings = app.extensions["iskra"].settings.model_copy(
        update={"celery_broker_url": "redis://127.0.0.1:1/0"}
    )

    response = client.get("/metrics")

    assert response.status_code == 200
    samples = _samples(response.get_data(as_text=True))
    assert samples[("iskra_state_source_up", frozenset({("source", "broker")}))] == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.e2e
def test_two_gunicorn_workers_report_the_total_of_both(settings, tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = _free_port()
    env = settings_env(settings.model_copy(update={"prometheus_multiproc_dir": metrics_dir}))
    env["WEB_CONCURRENCY"] = "2"
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
               "web.wsgi:app_from_environment()"]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    hits = 0
    with running(command, env, tmp_path / "gunicorn.log"):
        wait_until(lambda: _answers(f"{base}/livez"), timeout=30)
        before = _livez_total(base)
        # Concurrent requests keep both sync workers busy; batches go on until each has counted some.
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):
                statuses = list(
                    pool.map(lambda _: requests.get(f"{base}/livez", timeout=10).status_code, range(40))
                )
                assert statuses == [200] * 40
                hits += 40
                if len(list(metrics_dir.glob("counter_*.db"))) >= 2:
                    break
        counter_files = list(metrics_dir.glob("counter_*.db"))
        # Whichever worker answers the scrape, it reports the sum over both.
        totals = {_livez_total(base) - before for _ in range(6)}

    assert len(counter_files) >= 2
    assert totals == {hits}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting, or slow to boot under load
        return False


def _livez_total(base: str) -> float:
    samples = _samples(requests.get(f"{base}/metrics", timeout=10).text)
    labels = frozenset({("route", "/livez"), ("method", "GET"), ("status", "200")})
    return samples.get(("iskra_http_requests_total", labels), 0.0)


SCRAPER = "prometheus:" + "s" * 32


@pytest.fixture
def guarded_client(settings, engine, sessions):
    guarded = settings.model_copy(update={"metrics_basic_auth": SecretStr(SCRAPER)})
    return create_app(guarded, build_services(guarded, engine, sessions)).test_client()


@pytest.mark.parametrize("credentials", [None, "prometheus:wrong", SCRAPER + "x", "prometheus"])
def test_metrics_behind_basic_auth_refuse_scrapers_without_the_credentials(guarded_client, credentials):
    headers = {} if credentials is None else {"Authorization": _basic(credentials)}

    response = guarded_client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="metrics"'
    assert "iskra_http_requests_total" not in response.get_data(as_text=True)


def test_metrics_behind_basic_auth_answer_a_scraper_with_the_credentials(guarded_client):
    response = guarded_client.get("/metrics", headers={"Authorization": _basic(SCRAPER)})

    assert response.status_code == 200
    assert "iskra_http_requests_total" in response.get_data(as_text=True)


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()
