"""A redis-server of one test's own, so the test can stop it, restart it or flush its scripts."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.processes import wait_until

REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """One redis-server on a fixed port of 127.0.0.1 that can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        if not shutil.which(REDIS_SERVER):
            pytest.fail(f"{REDIS_SERVER} is needed for this test")
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)

    def start(self) -> None:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [*command, "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10)

    def stop(self) -> None:
        """SIGTERM, as an operator or an orchestrator would stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=1).ping())
        except redis.ConnectionError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A started PrivateRedis, stopped after the test."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()
    server.client.close()
