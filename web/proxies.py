"""Client addresses behind proxies: say so once when X-Forwarded-For arrives but no proxy is trusted."""

from __future__ import annotations

import threading

import structlog
from flask import Flask, request

from core.settings import Settings

log = structlog.get_logger(__name__)


def register_forwarded_for_warning(app: Flask, settings: Settings) -> None:
    """Log `forwarded_for_ignored` once per app (so per process) when untrusted proxies are in front."""
    if settings.trusted_proxy_count:
        return
    warned, lock = threading.Event(), threading.Lock()

    @app.before_request
    def _warn_once() -> None:
        if warned.is_set() or "X-Forwarded-For" not in request.headers:
            return
        with lock:  # gunicorn's threads: one warning, not one per thread that got here first
            if warned.is_set():
                return
            warned.set()
        # Behind a load balancer with TRUSTED_PROXY_COUNT=0 every client has the balancer's address, so all
        # unauthenticated requests and failed logins share one per-IP rate-limit bucket.
        log.warning(
            "forwarded_for_ignored",
            remote_addr=request.remote_addr,
            trusted_proxy_count=0,
            detail="Requests carry X-Forwarded-For but TRUSTED_PROXY_COUNT is 0: every client behind the "
            "proxy shares its address and one rate-limit bucket. Set TRUSTED_PROXY_COUNT to the number "
            "of proxies in front of the API.",
        )
