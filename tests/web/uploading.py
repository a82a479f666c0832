"""Helpers for upload tests: multipart requests, the objects a user has, the tasks waiting in a queue."""

from __future__ import annotations

import base64
import json

from sqlalchemy import func, select
from urllib3.filepost import encode_multipart_formdata

from models.storage.keys import user_originals_prefix
from models.tables import Asset, User


def upload(client, headers, content: bytes, *, filename="photo.jpg", file_type="image/jpeg", **fields):
    """POST a multipart upload encoded as browsers and HTTP libraries do (werkzeug's test encoder frames an
    empty file without the CRLF before the next boundary), in memory."""
    parts = [*fields.items(), ("file", (filename, content, file_type))]
    body, content_type = encode_multipart_formdata(parts)
    return client.post("/v1/assets", data=body, headers=headers, content_type=content_type)


def stored_keys(storage, user_id: str) -> list[str]:
    return [info.key for info in storage.iter_objects(user_originals_prefix(user_id))]


def leftovers(app, session, user_id: str) -> tuple[list[str], int, int]:
    """What `user_id` has: (objects stored, asset rows, bytes charged); a refused upload adds to none."""
    rows = session.scalar(select(func.count()).select_from(Asset).where(Asset.user_id == user_id))
    used = session.scalar(select(User.storage_used_bytes).where(User.user_id == user_id))
    return stored_keys(app.extensions["iskra"].storage, user_id), rows, used


def assert_problem(response, status: int, type_: str) -> None:
    """`response` is an RFC 9457 problem of `status` and `type_`, with the status in the body too."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    assert (response.json["type"], response.json["status"]) == (type_, status)


def queued(redis_client, settings, queue: str) -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in `queue` of this test run."""
    messages = [json.loads(raw) for raw in redis_client.lrange(f"{settings.redis_key_prefix}{queue}", 0, -1)]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]
