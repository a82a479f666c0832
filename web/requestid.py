"""A request id on every request: taken from `X-Request-ID` when sane, echoed back, bound to logs."""

from __future__ import annotations

import re
import uuid

import structlog
from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
_SANE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str | None:
    return g.get("request_id")


def register_request_id(app: Flask) -> None:
    @app.before_request
    def _assign() -> None:
        offered = request.headers.get(HEADER, "")
        g.request_id = offered if _SANE.match(offered) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        if "request_id" in g:
            response.headers[HEADER] = g.request_id
        return response
