"""The brokers worker tests run against: the run's Redis, and a RabbitMQ virtual host of the run's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import kombu.pools
import pytest
import requests

from core.settings import Settings

# TEST_BROKERS=redis runs on a machine without RabbitMQ; CI runs both.
BROKERS = tuple(name.strip() for name in os.environ.get("TEST_BROKERS", "redis,rabbitmq").split(","))
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
# Used only when rabbitmqctl is not installed here (a broker on another machine, say).
RABBITMQ_MANAGEMENT_URL = os.environ.get("TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")


class RabbitVhosts:
    """Creates and deletes virtual hosts with rabbitmqctl, or through the management API without it."""

    def __init__(self, broker_url: str) -> None:
        parts = urlsplit(broker_url)
        self.user, self.password = parts.username or "guest", parts.password or "guest"
        self.rabbitmqctl = shutil.which("rabbitmqctl")

    def create(self, vhost: str) -> None:
        if self.rabbitmqctl:
            self._ctl("add_vhost", vhost)
            self._ctl("set_permissions", "-p", vhost, self.user, ".*", ".*", ".*")
            return
        self._api("put", f"vhosts/{quote(vhost, safe='')}")
        permissions = {"configure": ".*", "write": ".*", "read": ".*"}
        self._api("put", f"permissions/{quote(vhost, safe='')}/{quote(self.user)}", json=permissions)

    def delete(self, vhost: str) -> None:
        if self.rabbitmqctl:
            self._ctl("delete_vhost", vhost)
        else:
            self._api("delete", f"vhosts/{quote(vhost, safe='')}")

    def queues(self, vhost: str) -> dict[str, tuple[str, bool]]:
        """The queues of `vhost`: each one's type and durability."""
        if self.rabbitmqctl:
            output = self._ctl("list_queues", "-p", vhost, "name", "type", "durable", "--formatter", "json")
            found = json.loads(output)
        else:
            found = self._api("get", f"queues/{quote(vhost, safe='')}")
        return {queue["name"]: (queue["type"], queue["durable"]) for queue in found}

    def _ctl(self, *args: str) -> str:
        done = subprocess.run([self.rabbitmqctl, "-q", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            pytest.fail(f"rabbitmqctl {args[0]} failed (is RabbitMQ running?): {done.stderr.strip()}")
        return done.stdout

    def _api(self, method: str, path: str, **kwargs: object) -> Any:
        try:
            response = requests.request(
                method, f"{RABBITMQ_MANAGEMENT_URL}/api/{path}", auth=(self.user, self.password),
                timeout=10, **kwargs,
            )  # fmt: skip
        except requests.ConnectionError as error:
            pytest.fail(f"neither rabbitmqctl nor RabbitMQ's management API is reachable: {error}")
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture(scope="session")
def rabbitmq_vhosts() -> RabbitVhosts:
    return RabbitVhosts(RABBITMQ_URL)


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_vhosts: RabbitVhosts) -> Iterator[str]:
    """An AMQP URL to a fresh virtual host on the local RabbitMQ, deleted (with its queues) after the run."""
    vhost = f"iskra-test-{uuid.uuid4().hex[:8]}"
    rabbitmq_vhosts.create(vhost)
    yield f"{RABBITMQ_URL.rstrip('/')}/{vhost}"
    # Celery clients share kombu's process-wide connection pools: close them before their vhost goes.
    kombu.pools.reset()
    rabbitmq_vhosts.delete(vhost)


@pytest.fixture(params=BROKERS)
def broker_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The run's settings with Celery on each broker in turn (Redis: the run's own key prefix)."""
    if request.param == "redis":
        return settings
    if request.param != "rabbitmq":
        pytest.fail(f"TEST_BROKERS names an unknown broker: {request.param!r}")
    return settings.model_copy(update={"celery_broker_url": request.getfixturevalue("rabbitmq_url")})


@pytest.fixture
def rabbitmq_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The run's settings with Celery on RabbitMQ, for what only RabbitMQ promises."""
    if "rabbitmq" not in BROKERS:
        pytest.skip("TEST_BROKERS leaves RabbitMQ out")
    return settings.model_copy(update={"celery_broker_url": request.getfixturevalue("rabbitmq_url")})
