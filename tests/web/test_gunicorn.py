"""The API under gunicorn with gunicorn.conf.py: a request in flight at SIGTERM still completes."""

from __future__ import annotations

import http.client
import io
import json
import signal
import socket
import uuid

import pytest
import requests
from sqlalchemy import delete, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from core import taskqueue
from models.storage import make_storage
from models.tables import Asset, User
from tests.processes import BIN, ROOT, running, settings_env, wait_until
from tests.queues import take
from tests.workers.media.hostile_media import good_jpeg
from web.auth import make_dev_token

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while starting, or slow to boot under load
        return False


def _upload_request(port: int, token: str, request_id: str) -> tuple[bytes, bytes]:
    """The head and the body of a raw multipart upload, so the body can be sent in two halves."""
    parts = MultiDict(
        [("file", FileStorage(io.BytesIO(good_jpeg(64, 64)), "photo.jpg", "file", "image/jpeg"))]
    )
    boundary, body = encode_multipart(parts)
    head = (
        f"POST /v1/assets HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    )
    return head.encode(), body


def _read_response(connection: socket.socket) -> tuple[int, dict[str, str], dict]:
    raw = b""
    while chunk := connection.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def test_a_request_in_flight_when_gunicorn_is_told_to_stop_completes_and_is_logged(
    settings, engine, redis_client, tmp_path
):
    port, user_id, request_id = _free_port(), f"user_{uuid.uuid4().hex[:10]}", f"req-{uuid.uuid4().hex}"
    env = {**settings_env(settings), "WEB_CONCURRENCY": "1"}
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
               "web.wsgi:app_from_environment()"]  # fmt: skip
    log_path = tmp_path / "gunicorn.log"
    head, body = _upload_request(port, make_dev_token(settings, user_id), request_id)
    try:
        with running(command, env, log_path) as server:
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/livez"), timeout=30)
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                connection.sendall(head + body[: len(body) // 2])
                # The view commits the user before it reads the body: from here the worker is mid-request.
                wait_until(lambda: _user_exists(engine, user_id), timeout=30)
                server.send_signal(signal.SIGTERM)
                wait_until(lambda: "Handling signal: term" in log_path.read_text(), timeout=30)
                connection.sendall(body[len(body) // 2 :])
                status, headers, answer = _read_response(connection)
            exit_code = server.wait(timeout=60)
        log_lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    finally:
        _remove(engine, settings, redis_client, user_id)

    assert status == 201, answer
    assert headers["X-Request-ID"] == request_id
    assert exit_code == 0
    events = [line["event"] for line in log_lines]
    upload_event = next(line for line in log_lines if line.get("request_id") == request_id)
    assert (upload_event["event"], upload_event["route"], upload_event["status"]) == (
        "request",
        "/v1/assets",
        201,
    )
    # Answered after the stop signal arrived, and before the worker went away.
    signalled, answered = events.index("Handling signal: term"), log_lines.index(upload_event)
    exiting = next(i for i, event in enumerate(events) if event.startswith("Worker exiting"))
    assert signalled < answered < exiting


def _user_exists(engine, user_id: str) -> bool:
    with engine.connect() as connection:
        return connection.scalar(select(User.user_id).where(User.user_id == user_id)) is not None


def _remove(engine, settings, redis_client, user_id: str) -> None:
    with engine.begin() as connection:
        assets = connection.execute(select(Asset.id, Asset.storage_key).where(Asset.user_id == user_id)).all()
        connection.execute(delete(Asset).where(Asset.user_id == user_id))
        connection.execute(delete(User).where(User.user_id == user_id))
    storage = make_storage(settings)
    for asset_id, key in assets:
        storage.delete(key)
        take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, str(asset_id))


def test_a_client_keeps_its_connection_for_the_next_request(settings, tmp_path):
    port = _free_port()
    env = {**settings_env(settings), "WEB_CONCURRENCY": "1"}
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
               "web.wsgi:app_from_environment()"]  # fmt: skip
    with running(command, env, tmp_path / "gunicorn.log"):
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/livez"), timeout=30)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        answers = []
        for _ in range(3):
            connection.request("GET", "/livez")
            response = connection.getresponse()
            response.read()
            answers.append((response.status, response.getheader("Connection"), connection.sock is not None))
        connection.close()
        log = (tmp_path / "gunicorn.log").read_text()

    # Kept open after each response (HTTP/1.1's default), not closed for the next request to reconnect.
    assert answers == [(200, "keep-alive", True)] * 3
    assert "No keepalived connections can be handled" not in log


def test_a_plain_gunicorn_start_without_a_signing_secret_refuses_to_boot_and_says_why(settings, tmp_path):
    env = {**settings_env(settings), "WEB_CONCURRENCY": "1"}
    del env["SIGNING_SECRET"]  # the local backend would sign download links with the public placeholder
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"),
               "--bind", f"127.0.0.1:{_free_port()}", "web.wsgi:app_from_environment()"]  # fmt: skip
    log_path = tmp_path / "gunicorn.log"

    with running(command, env, log_path) as server:
        exit_code = server.wait(timeout=60)

    assert exit_code != 0
    assert "SIGNING_SECRET is not set" in log_path.read_text()
