"""A small EventSource-like reader for tests: one real HTTP stream on a raw socket, parsed as SSE.

A raw socket, because http.client's reader is unusable after one read timed out, and tests wait on
purpose for events that must not come.
"""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass(frozen=True)
class Event:
    id: str | None
    type: str
    data: str

    @property
    def body(self) -> dict:
        return json.loads(self.data)


@dataclass
class EventStream:
    """An open `GET /v1/events`: its status and headers, then events (`next`) and comments as they come."""

    sock: socket.socket
    status: int
    headers: dict[str, str]
    buffer: bytes = b""
    chunked: bool = False
    text: str = ""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    def next(self, timeout: float = 20) -> Event:
        """The next event (comments are collected on the way); TimeoutError when none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._parse_one()
            if event is not None:
                return event
            self._receive(deadline)

    def next_comment(self, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        seen = len(self.comments)
        while len(self.comments) == seen:
            if self._parse_one() is None:
                self._receive(deadline)
        return self.comments[seen]

    def quiet(self, seconds: float) -> bool:
        """Whether no event arrives for `seconds` (comments do not count)."""
        try:
            self.next(timeout=seconds)
        except TimeoutError:
            return True
        return False

    def body_text(self, timeout: float = 5) -> str:
        """The whole body of a refusal (it has a Content-Length)."""
        deadline = time.monotonic() + timeout
        while len(self.text.encode()) < int(self.headers["content-length"]):
            self._receive(deadline)
        return self.text

    def _parse_one(self) -> Event | None:
        while "\n\n" in self.text:
            block, self.text = self.text.split("\n\n", 1)
            event_id, event_type, data = None, "message", []
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    self.comments.append(value)
                elif name == "id":
                    event_id = value
                elif name == "event":
                    event_type = value
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
            if data or event_id is not None:
                return Event(event_id, event_type, "\n".join(data))
        return None

    def _receive(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            raise TimeoutError("nothing arrived in time")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the stream ended")
        self.buffer += chunk
        self._decode()

    def _decode(self) -> None:
        if not self.chunked:
            self.text += self.buffer.decode()
            self.buffer = b""
            return
        while b"\r\n" in self.buffer:
            size_line, rest = self.buffer.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            self.text += rest[:size].decode()
            self.buffer = rest[size + 2 :]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_stream(port: int, headers: dict[str, str] | None = None, **query: str) -> EventStream:
    """Open `GET /v1/events` on 127.0.0.1:`port` as an EventSource would (Accept, no cache)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    path = "/v1/events" + (f"?{urlencode(query)}" if query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream",
             "Cache-Control: no-cache"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw = b""
    deadline = time.monotonic() + 20
    while b"\r\n\r\n" not in raw:
        if not select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError("no response head")
        chunk = sock.recv(65536)
        if not chunk:
            break
        raw += chunk
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers_in = {name.lower(): value for name, _, value in (line.partition(": ") for line in header_lines)}
    stream = EventStream(sock, int(status_line.split()[1]), headers_in)
    stream.chunked = headers_in.get("transfer-encoding", "").lower() == "chunked"
    stream.buffer = rest
    stream._decode()
    return stream
