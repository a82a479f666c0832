"""What a browser test talks to: a gunicorn API, a Celery worker, the event stream, a page elsewhere."""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from core.settings import Settings
from tests.processes import BIN, ROOT, running, settings_env, wait_until, worker_command

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>uppy</title>
<script src="/uppy6.js"></script><script>window.Uppy6 = window.UppyKit;</script>
<script src="/uppy5.js"></script><script>window.Uppy5 = window.UppyKit;</script>
</head><body>direct uploads</body></html>"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def serving_page(directory: Path) -> Iterator[str]:
    """Serve `directory` (page, bundles, media) on its own port: an origin other than the API's."""
    (directory / "index.html").write_text(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(_Quiet, directory=directory))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Stack:
    api: str
    settings: Settings
    events: str | None = None


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def running_stack(
    settings: Settings, logs: Path, *, events: bool = False, queues: str = "images,videos"
) -> Iterator[Stack]:
    """A real gunicorn API process and a real Celery worker of `queues` configured by `settings`; with
    `events`, the event stream's process too, on its own port, allowing the API's origin (the console's)."""
    port, events_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    if events:
        origins = (*settings.cors_allowed_origins, url)
        settings = settings.model_copy(update={"events_port": events_port, "cors_allowed_origins": origins})
    env = {**settings_env(settings), "WEB_CONCURRENCY": "2", "WEB_THREADS": "8"}
    api = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
           "web.wsgi:app_from_environment()"]  # fmt: skip
    stream = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
              "--bind", f"127.0.0.1:{events_port}", "--workers", "1", "--worker-class", "gthread",
              "--threads", "32", "--graceful-timeout", "2",
              "web.events.wsgi:app_from_environment()"]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(running(api, env, logs / "api.log"))
        stack.enter_context(running(worker_command(queues, concurrency=2), env, logs / "worker.log"))
        events_url = None
        if events:
            stack.enter_context(running(stream, env, logs / "events.log"))
            events_url = f"http://127.0.0.1:{events_port}"
            wait_until(lambda: _answers(f"{events_url}/livez"), timeout=60)
        wait_until(lambda: _answers(f"{url}/livez"), timeout=60)
        yield Stack(url, settings, events_url)
