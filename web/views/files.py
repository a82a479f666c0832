"""Local-backend files: `GET /files/<token>` streams an object (Range, conditional GET, HEAD); `PUT
/files/parts/<token>` receives one part of a direct upload."""

from __future__ import annotations

import time

from flask import Blueprint, request, send_file

from models.errors import NotFound, PayloadTooLarge
from models.storage.local import LocalStorage
from models.storage.multipart import UploadMissing
from web.services import services

bp = Blueprint("files", __name__)


@bp.get("/files/<token>")
def download(token: str):
    """The object a valid token grants; 403 when tampered or expired, 404 when gone."""
    storage = services().storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("Downloads are served by the storage backend itself.")
    grant = storage.signer.verify(token)
    if (info := storage.head(grant.key)) is None:
        raise NotFound("The file no longer exists.")
    seconds_left = max(0, grant.expires_at - int(time.time()))
    response = send_file(
        storage.path(grant.key),
        mimetype=grant.content_type or info.content_type or "application/octet-stream",
        conditional=True,
        etag=info.etag,
        last_modified=info.last_modified,
        max_age=seconds_left,
    )
    # The link is a per-user capability: no shared caches. A key's bytes never change (renditions are
    # only ever re-made from the same original, a project thumbnail has a key per revision), so a
    # browser keeps them until the link expires without asking again.
    response.headers["Cache-Control"] = f"private, max-age={seconds_left}, immutable"
    # User content never runs as a page here.
    response.headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
    return response


@bp.put("/files/parts/<token>")
def upload_part(token: str):
    """Store one part of a direct upload on local disk; answers its ETag (exposed to browsers by CORS)."""
    storage = services().storage
    if not isinstance(storage, LocalStorage):
        raise NotFound("Parts are uploaded to the storage backend itself.")
    grant = storage.part_signer.verify(token)
    if request.content_length is not None and request.content_length > grant.max_bytes:
        raise PayloadTooLarge(f"A part may have at most {grant.max_bytes} bytes.")
    request.max_content_length = grant.max_bytes
    try:
        etag = storage.write_part(grant, request.stream)
    except UploadMissing:
        raise NotFound("No such upload.") from None
    return "", 200, {"ETag": f'"{etag}"'}
