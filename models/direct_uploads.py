"""Direct uploads' state in Redis: session tickets, and what each open multipart upload was made for.

A ticket stands for its user for one hour in the `companionEndpoint` path (Uppy 6 sends no headers). An
open upload remembers its owner, its server-made key and the metadata sent when it was created, for as
long as maintenance lets an incomplete upload live (plus a margin); completion reads it back.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from models.errors import NotFound
from models.storage.keys import extension_for, original_key, user_originals_prefix

TICKET_SECONDS = 3600
# Maintenance aborts uploads incomplete for 24 h; their records outlive them a little.
UPLOAD_RECORD_SECONDS = 25 * 3600


@dataclass(frozen=True)
class OpenUpload:
    """A multipart upload as it was created: whose, where, and the metadata to give its asset."""

    user_id: str
    key: str
    upload_id: str
    content_type: str
    generation: dict[str, Any]
    # The plan's per-file limit when it was created: no part may be larger (local part URLs enforce it).
    max_bytes: int

    @property
    def asset_id(self) -> uuid.UUID:
        """The asset the upload becomes: its id is the key's file name, so completing twice finds it."""
        return uuid.UUID(self.key.rsplit("/", 1)[1].split(".", 1)[0])


def direct_upload_key(user_id: str, declared_type: str) -> str:
    """A fresh server-made key for a direct upload, named after the asset it will become."""
    return original_key(user_id, uuid.uuid4(), extension_for(declared_type))


class DirectUploads:
    """Tickets and open uploads, under the deployment's Redis key prefix."""

    def __init__(self, redis: Any, prefix: str = "") -> None:
        self.redis, self.prefix = redis, prefix

    def open_session(self, user_id: str) -> tuple[str, int]:
        """A new ticket for `user_id` and when it expires (epoch ms)."""
        ticket = secrets.token_urlsafe(32)
        self.redis.set(f"{self.prefix}uploads:ticket:{ticket}", user_id, ex=TICKET_SECONDS)
        return ticket, int((time.time() + TICKET_SECONDS) * 1000)

    def ticket_user(self, ticket: str) -> str | None:
        """Whose ticket this is, while it is valid."""
        if not ticket or len(ticket) > 128:
            return None
        user_id = self.redis.get(f"{self.prefix}uploads:ticket:{ticket}")
        return user_id.decode() if user_id is not None else None

    def remember(self, upload: OpenUpload) -> None:
        record = json.dumps(asdict(upload))
        self.redis.set(self._upload_key(upload.upload_id), record, ex=UPLOAD_RECORD_SECONDS)

    def owned(self, user_id: str, upload_id: str, key: str) -> OpenUpload:
        """The user's open upload of that id and key; NotFound for anyone else's, or none at all."""
        raw = self.redis.get(self._upload_key(upload_id)) if len(upload_id) <= 1024 else None
        upload = OpenUpload(**json.loads(raw)) if raw is not None else None
        if (
            upload is None
            or upload.user_id != user_id
            or upload.key != key
            or not key.startswith(user_originals_prefix(user_id))
        ):
            raise NotFound("No such upload.")
        return upload

    def forget(self, upload_id: str) -> None:
        self.redis.delete(self._upload_key(upload_id))

    def _upload_key(self, upload_id: str) -> str:
        return f"{self.prefix}uploads:open:{upload_id}"
