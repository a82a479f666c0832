"""One structured `request` log event per answered request, carrying the request id bound for it."""

from __future__ import annotations

import time

import structlog
from flask import Flask, Response, g, request

log = structlog.get_logger("iskra.access")


def register_access_log(app: Flask) -> None:
    """Log method, route template, status and duration of every request (gunicorn's own access log is off)."""

    @app.before_request
    def _start() -> None:
        g.access_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        started = g.pop("access_started", None)
        if started is not None:
            log.info(
                "request",
                method=request.method,
                path=request.path,
                route=request.url_rule.rule if request.url_rule is not None else None,
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                remote_addr=request.remote_addr,
            )
        return response

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        # The request id must not leak into lines the process logs between requests.
        structlog.contextvars.clear_contextvars()
