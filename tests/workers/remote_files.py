"""A local HTTP server that plays the remote host of imports: files, redirects, slow and oversized bodies."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.workers.media.hostile_media import good_jpeg

IMAGE = good_jpeg(64, 48)
HTML = b"<!doctype html><html><body>Not an image</body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    hosts_seen: list[str]

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "image/jpeg", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", headers.pop("length", str(len(body))))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.hosts_seen.append(self.headers.get("Host", ""))
        path = self.path
        if path == "/image.jpg":
            self._send(200, IMAGE)
        elif path.startswith("/hop/"):
            remaining = int(path.rsplit("/", 1)[1])
            self._send(302, Location="/image.jpg" if remaining <= 1 else f"/hop/{remaining - 1}")
        elif path == "/to-private":
            self._send(302, Location="http://10.0.0.1/image.jpg")
        elif path == "/to-metadata":
            self._send(302, Location="http://169.254.169.254/latest/meta-data/")
        elif path == "/to-file":
            self._send(302, Location="file:///etc/passwd")
        elif path == "/declared-huge":
            self._send(200, IMAGE[:100], length=str(100 * 1024 * 1024))
        elif path == "/undeclared-big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the body ends when the connection closes
            self.wfile.write(IMAGE)
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
        elif path == "/length-superscript":
            # `str.isdigit()` holds for "²" but int() refuses it.
            self._send(200, IMAGE, length="\u00b2")
        elif path == "/to-broken-ipv6":
            self._send(302, Location="https://[x")
        elif path == "/page.html":
            self._send(200, HTML, content_type="text/html")
        elif path == "/missing":
            self._send(404, b"nope", content_type="text/plain")
        elif path == "/slow":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(IMAGE[:64])
            for _ in range(100):
                time.sleep(0.1)
                self.wfile.write(b"\0" * 16)
                self.wfile.flush()
        elif path == "/hang":
            time.sleep(5)
            self._send(200, IMAGE)
        else:
            self._send(404)


class RemoteFiles(ThreadingHTTPServer):
    daemon_threads = True
    hosts_seen: list[str]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_address[1]}{path}"

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that hang up mid-body (refused or capped downloads) are what the tests ask for; the
        # default handler would print a traceback from a stray thread into whatever output is captured next.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@contextmanager
def remote_files() -> Iterator[RemoteFiles]:
    """The server on 127.0.0.1 and a random port, for the duration of the block."""
    server = RemoteFiles(("127.0.0.1", 0), _Handler)
    server.hosts_seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
