"""Read the Celery messages waiting in this run's Redis queues (no worker consuming them)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import redis

from core.settings import Settings


@dataclass(frozen=True)
class Waiting:
    raw: bytes
    task: str
    args: list[Any]
    headers: dict[str, Any]


def queue_key(settings: Settings, queue: str) -> str:
    """Where kombu's Redis transport keeps a queue's list under the run's `global_keyprefix`."""
    return f"{settings.redis_key_prefix}{queue}"


def waiting(client: redis.Redis, settings: Settings, queue: str) -> list[Waiting]:
    found = []
    for raw in client.lrange(queue_key(settings, queue), 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append(Waiting(raw, message["headers"]["task"], args, message["headers"]))
    return found


def take(client: redis.Redis, settings: Settings, queue: str, task: str, arg: str) -> list[Waiting]:
    """Remove and return the waiting messages of `task` whose first argument is `arg`."""
    taken = [m for m in waiting(client, settings, queue) if m.task == task and m.args[:1] == [arg]]
    for message in taken:
        client.lrem(queue_key(settings, queue), 0, message.raw)
    return taken
