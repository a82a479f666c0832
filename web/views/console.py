"""The console (SPEC §16): a page of static files, what it must know before sign-in, development tokens."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, request, send_from_directory
from spectree import Response as Answers

from core.settings import Settings
from models.errors import NotFound
from web.auth import dev_secret, make_dev_token
from web.openapi import api
from web.schemas import dump
from web.schemas.console import ConsoleConfigOut, DevTokenIn, DevTokenOut
from web.services import services

FILES = Path(__file__).resolve().parent.parent / "console"
DEV_TOKEN_SECONDS = 86_400
TAGS = ["console"]

bp = Blueprint("console", __name__, url_prefix="/console")


@bp.get("/")
def page() -> Response:
    """The console's page."""
    return file("index.html")


@bp.get("/<path:name>")
def file(name: str) -> Response:
    """One of the console's files; revalidated on every load, so a new release is never half-cached."""
    response = send_from_directory(FILES, name, conditional=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = content_security_policy(services().settings)
    response.headers.update({"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})
    return response


@bp.get("/config")
@api.validate(resp=Answers(HTTP_200=ConsoleConfigOut), tags=TAGS)
def config():
    """Where the event stream listens, and whether this deployment issues development tokens."""
    settings = services().settings
    return dump(ConsoleConfigOut(events_url=events_url(settings), dev_tokens=issues_dev_tokens(settings)))


@bp.post("/dev-token")
@api.validate(json=DevTokenIn, resp=Answers("HTTP_404", HTTP_201=DevTokenOut), tags=TAGS)
def dev_token():
    """A development token for `userId` (default `user_local`); 404 unless AUTH_MODE=dev, as in production."""
    settings = services().settings
    if not issues_dev_tokens(settings):
        raise NotFound("Development tokens are issued only when AUTH_MODE=dev.")
    user_id = request.context.json.user_id  # type: ignore[attr-defined]
    token = make_dev_token(settings, user_id, ttl_seconds=DEV_TOKEN_SECONDS)
    expires_at = int((time.time() + DEV_TOKEN_SECONDS) * 1000)
    return dump(DevTokenOut(token=token, user_id=user_id, expires_at=expires_at)), 201


def issues_dev_tokens(settings: Settings) -> bool:
    """The same condition `make_dev_token` holds to (production refuses AUTH_MODE=dev at start-up)."""
    return (
        settings.environment != "production"
        and settings.auth_mode == "dev"
        and dev_secret(settings) is not None
    )


def events_url(settings: Settings) -> str:
    """EVENTS_PUBLIC_URL, or the host this request came to on EVENTS_PORT (the two ports of `./dev up`)."""
    if settings.events_public_url:
        return settings.events_public_url
    host = urlsplit(request.host_url).hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"{request.scheme}://{host}:{settings.events_port}"


def storage_origin(settings: Settings) -> str | None:
    """The origin of S3 part-upload and download URLs (path-style), None when the API serves them."""
    if settings.storage_backend != "s3":
        return None
    endpoint = settings.s3_endpoint_url or f"https://s3.{settings.s3_region}.amazonaws.com"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from the console's own files only; data from the API, the stream and storage."""
    storage = storage_origin(settings) or ""
    sources = {
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": f"'self' data: blob: {storage}",
        "connect-src": f"'self' {events_url(settings)} {storage}",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value.strip()}" for name, value in sources.items())
