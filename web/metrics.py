"""Prometheus metrics: request counts and latency by route template, and `/metrics` for scrapers.

prometheus_client decides at import whether values live in per-process files (PROMETHEUS_MULTIPROC_DIR);
with gunicorn's several workers `/metrics` merges every process's files, so totals are right whichever
worker answers the scrape.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import SecretStr

from models.errors import Unauthorized
from web.services import services
from web.state_metrics import StateCollector

REQUESTS = Counter("iskra_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "iskra_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Requests that matched no route share one label, so scanners cannot blow up the series count.
UNMATCHED = "<unmatched>"

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Every process's request and task metrics plus the database and queue gauges."""
    app = services()
    _require_scraper_credentials(app.settings.metrics_basic_auth)
    directory = app.settings.prometheus_multiproc_dir
    if directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(directory))
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    state = CollectorRegistry()
    state.register(current_app.extensions["iskra_state_metrics"])
    return Response(body + generate_latest(state), mimetype=CONTENT_TYPE_LATEST)


def _require_scraper_credentials(expected: SecretStr | None) -> None:
    """Unauthorized (401, Basic challenge) unless METRICS_BASIC_AUTH is unset or was sent."""
    if expected is None:
        return
    sent = request.authorization
    given = f"{sent.username}:{sent.password}" if sent is not None and sent.type == "basic" else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        refusal = Unauthorized("/metrics needs the credentials in METRICS_BASIC_AUTH.")
        refusal.headers["WWW-Authenticate"] = 'Basic realm="metrics"'
        raise refusal


def register_metrics(app: Flask) -> None:
    """Time every request and count it by route template, method and status; serve `/metrics`."""
    app.extensions["iskra_state_metrics"] = StateCollector(app.extensions["iskra"])

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)
