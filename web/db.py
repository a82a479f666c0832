"""Request-scoped database sessions; views open the transaction with `db().begin()`."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from web.services import services


def db() -> Session:
    """This request's session, created on first use."""
    if "db" not in g:
        g.db = services().sessions()
    return g.db


def register_session_teardown(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_error: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()
