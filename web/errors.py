"""The one mapping from refusals and failures to RFC 9457 problem+json responses."""

from __future__ import annotations

from typing import Any

import psycopg
import sqlalchemy.exc
import structlog
from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from models.errors import DomainError, ServiceUnavailable, StorageError

PROBLEM_TYPE = "application/problem+json"
log = structlog.get_logger(__name__)


def problem(status: int, type_: str, title: str, detail: str | None = None, **extra: Any) -> Response:
    """A problem+json response; `type` is a stable slug the frontend switches on."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_TYPE)


# Werkzeug refusals that have a domain twin share its type, so the frontend switches on one slug.
HTTP_TYPES = {413: "payload-too-large"}


# The database cannot be reached or dropped the connection, or the pool had no connection to lend in time:
# a dependency failure (503, retry), never a 500. SQLAlchemy wraps psycopg's errors; the raw ones are here
# for code that talks to psycopg directly.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def _http_type(error: HTTPException) -> str:
    if error.code in HTTP_TYPES:
        return HTTP_TYPES[error.code]
    return (error.name or "error").lower().replace(" ", "-").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        response = problem(error.status, error.type, error.title, error.detail, **error.extra)
        response.headers.update(error.headers)
        return response

    @app.errorhandler(StorageError)
    def _storage(error: StorageError) -> Response:
        # Refusals never reach here (they are DomainErrors): this is the backend failing. Retrying is safe.
        log.warning("storage_unavailable", error=str(error))
        return problem(
            503, ServiceUnavailable.type, ServiceUnavailable.title, "Storage is unavailable; try again."
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        response = problem(error.code or 500, _http_type(error), error.name, error.description)
        # The refusal's own headers carry meaning: Allow on 405, Content-Range (`bytes */size`) on 416.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    def _database_unavailable(error: Exception) -> Response:
        log.warning("database_unavailable", error_type=type(error).__name__)
        return problem(
            503,
            "service-unavailable",
            "A dependency is unavailable",
            "The database is unavailable; retry shortly.",
        )

    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled_error", error_type=type(error).__name__)
        return problem(500, "internal-error", "Internal error", "Something went wrong on our side.")
