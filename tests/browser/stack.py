"""What a browser test talks to: a gunicorn API, a Celery worker, and a page of another origin."""

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


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def running_stack(settings: Settings, logs: Path) -> Iterator[Stack]:
    """A real gunicorn API process and a real Celery worker (images, videos) configured by `settings`."""
    port = free_port()
    env = {**settings_env(settings), "WEB_CONCURRENCY": "2", "WEB_THREADS": "8"}
    api = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
           "web.wsgi:app_from_environment()"]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(running(api, env, logs / "api.log"))
        stack.enter_context(running(worker_command("images,videos", concurrency=2), env, logs / "worker.log"))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/livez"), timeout=60)
        yield Stack(url, settings)
