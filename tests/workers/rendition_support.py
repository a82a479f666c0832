"""Helpers for the media-task tests: originals in storage, asset rows, and reading renditions back."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.storage import Storage, make_storage
from models.storage.keys import original_key
from models.tables import Asset, User
from models.users import ensure_user
from workers.media.sniff import SNIFF_BYTES, sniff


def add_asset(
    sessions: sessionmaker[Session],
    storage: Storage,
    data: bytes,
    *,
    type: str = "image",
    ext: str = "bin",
    user_id: str = "user_media",
    **columns: Any,
) -> str:
    """Store `data` as an original and insert its `pending` asset row, charged to the user; its id.

    The row's MIME type is what intake would have recorded: the type the bytes sniff as.
    """
    asset_id = uuid.uuid4()
    key = original_key(user_id, asset_id, ext)
    storage.put(key, io.BytesIO(data), content_type="application/octet-stream")
    with sessions.begin() as session:
        ensure_user(session, user_id).storage_used_bytes += len(data)
        sniffed = sniff(data[:SNIFF_BYTES])
        mime_type = sniffed.mime_type if sniffed else "application/octet-stream"
        row = {"mime_type": mime_type, "status": "pending", **columns}
        session.add(
            Asset(id=asset_id, user_id=user_id, type=type, storage_key=key, size_bytes=len(data), **row)
        )
    return str(asset_id)


def asset(sessions: sessionmaker[Session], asset_id: str) -> Asset:
    """The asset row as the database has it now."""
    with sessions() as session:
        return session.execute(select(Asset).where(Asset.id == uuid.UUID(asset_id))).scalar_one()


def storage_used(sessions: sessionmaker[Session], user_id: str = "user_media") -> int:
    with sessions() as session:
        return session.execute(select(User.storage_used_bytes).where(User.user_id == user_id)).scalar_one()


def rendition_keys(storage: Storage, asset_id: str) -> set[str]:
    """Every rendition object stored for the asset, referenced or not."""
    return {info.key for info in storage.iter_objects(f"renditions/{asset_id}/")}


def open_webp(storage: Storage, key: str) -> Image.Image:
    """A stored rendition decoded, after checking it really is a WebP."""
    with storage.open(key) as stream:
        image = Image.open(io.BytesIO(stream.read()))
    image.load()
    assert image.format == "WEBP"
    return image


@contextmanager
def committed_assets(
    settings: Settings, engine: Engine, user_id: str
) -> Iterator[tuple[sessionmaker[Session], Storage, list[str]]]:
    """Committing sessions, storage and a list to add asset ids to; those rows and objects go afterwards."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    storage = make_storage(settings)
    created: list[str] = []
    try:
        yield sessions, storage, created
    finally:
        remove_committed(engine, storage, created, user_id)


def remove_committed(engine: Engine, storage: Storage, asset_ids: list[str], user_id: str) -> None:
    """Delete rows a real worker test committed, and their objects."""
    ids = [uuid.UUID(asset_id) for asset_id in asset_ids]
    with engine.begin() as connection:
        keys = connection.execute(select(Asset.storage_key).where(Asset.id.in_(ids))).scalars().all()
        connection.execute(delete(Asset).where(Asset.id.in_(ids)))
        connection.execute(delete(User).where(User.user_id == user_id))
    for key in keys:
        storage.delete(key)
    for asset_id in asset_ids:
        for key in rendition_keys(storage, asset_id):
            storage.delete(key)
