"""Slow clients under the real gunicorn configuration: trickling uploads neither starve others nor get cut."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import uuid
from select import select as readable_now

import pytest
import requests
from sqlalchemy import func, select

from models.tables import User
from tests.processes import BIN, ROOT, running, settings_env, wait_until
from tests.web.test_gunicorn import _answers, _free_port, _read_response, _remove, _upload_request
from web.auth import make_dev_token

pytestmark = pytest.mark.e2e

TRICKLES = 30
TICK_SECONDS = 0.5
# gunicorn's --timeout for this run: the one upload that completes trickles for 30 ticks, longer than this.
SHORT_TIMEOUT = 10


class Trickle:
    """One upload whose body goes out a few bytes per tick, holding back its last byte until released."""

    def __init__(self, port: int, token: str, completes: bool) -> None:
        self.head, self.body = _upload_request(port, token, f"req-{uuid.uuid4().hex}")
        # The one that completes needs at least 30 ticks (15 s, past SHORT_TIMEOUT) for its whole body.
        self.step = math.ceil(len(self.body) / 30) if completes else 2
        self.end = len(self.body) - 1
        self.sent = 8
        self.connection = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.connection.sendall(self.head + self.body[: self.sent])

    def release(self) -> None:
        self.end = len(self.body)

    def tick(self) -> None:
        if self.sent < self.end:
            chunk = self.body[self.sent : min(self.sent + self.step, self.end)]
            self.connection.sendall(chunk)
            self.sent += len(chunk)


def _trickle(trickles: list[Trickle], stop: threading.Event) -> None:
    while not stop.wait(TICK_SECONDS):
        for trickle in trickles:
            # The server answered or hung up: the assertions say whether it should have.
            with contextlib.suppress(OSError):
                trickle.tick()


def _users_present(engine, user_ids: list[str]) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(User).where(User.user_id.in_(user_ids)))


def test_thirty_trickling_uploads_leave_the_api_answering_and_one_slower_than_the_timeout_completes(
    settings, engine, redis_client, tmp_path
):
    port = _free_port()
    env = settings_env(settings)
    env.pop("WEB_CONCURRENCY", None)  # the configuration's own worker count
    command = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
               "--timeout", str(SHORT_TIMEOUT), "web.wsgi:app_from_environment()"]  # fmt: skip
    uploaders = [f"user_slow_{uuid.uuid4().hex[:10]}" for _ in range(TRICKLES)]
    prober = f"user_probe_{uuid.uuid4().hex[:10]}"
    stop, trickles = threading.Event(), []
    try:
        with running(command, env, tmp_path / "gunicorn.log"):
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/livez"), timeout=30)
            for index, user_id in enumerate(uploaders):
                trickles.append(Trickle(port, make_dev_token(settings, user_id), completes=index == 0))
            trickler = threading.Thread(target=_trickle, args=(trickles, stop), daemon=True)
            trickler.start()
            # Each upload view commits its user before reading the body: all thirty are being read at once.
            wait_until(lambda: _users_present(engine, uploaders) == TRICKLES, timeout=20)

            livez = requests.get(f"http://127.0.0.1:{port}/livez", timeout=10)
            token = make_dev_token(settings, prober)
            me = requests.get(
                f"http://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            # Nothing came back on any upload's connection meanwhile: neither an answer nor a hang-up.
            answered_uploads, _, _ = readable_now([trickle.connection for trickle in trickles], [], [], 0)

            trickles[0].release()
            status, _, answer = _read_response(trickles[0].connection)
            stop.set()
            trickler.join(timeout=5)
    finally:
        stop.set()
        for trickle in trickles:
            trickle.connection.close()
        for user_id in [*uploaders, prober]:
            _remove(engine, settings, redis_client, user_id)

    assert (livez.status_code, me.status_code) == (200, 200)
    assert me.json()["userId"] == prober
    assert answered_uploads == []
    assert status == 201, answer
