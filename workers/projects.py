"""Project thumbnails: render the latest saved canvas into a WebP and record it on the project row."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from PIL import Image, UnidentifiedImageError
from sqlalchemy import Uuid, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core import taskqueue
from models.errors import ObjectMissing, StorageError
from models.storage.keys import project_thumbnail_key
from models.tables import Asset, PendingDeletion, Project
from workers.context import current
from workers.media.canvas_render import Placed, parse_colour, render

THUMBNAIL_SIZE = 400
VISUAL_TYPES = ("image", "video")


@dataclass(frozen=True)
class Snapshot:
    """What a render needs, read in one short transaction: the canvas and its assets' rendition keys."""

    revision: int
    canvas: dict[str, Any]
    rendition_keys: dict[str, str]


@shared_task(
    name=taskqueue.RENDER_PROJECT_THUMBNAIL,
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(StorageError,),
    retry_backoff=True,
    max_retries=3,
)
def render_project_thumbnail(project_id: str) -> None:
    """Render the project's current canvas unless its thumbnail is already of the current revision."""
    context, pid = current(), uuid.UUID(project_id)
    with context.sessions.begin() as session:
        snapshot = _snapshot(session, pid)
    if snapshot is None:
        return
    elements = _placed_elements(snapshot, _AssetPictures(context.storage))
    webp = render(elements, parse_colour(snapshot.canvas.get("backgroundColor")), THUMBNAIL_SIZE)
    key = project_thumbnail_key(pid, snapshot.revision)
    context.storage.put(key, io.BytesIO(webp), content_type="image/webp")
    with context.sessions.begin() as session:
        recorded = _record(session, pid, snapshot.revision, key)
    if not recorded:
        # A save landed while rendering; its own scheduled render will draw the newer canvas.
        context.storage.delete(key)


def _snapshot(session: Session, pid: uuid.UUID) -> Snapshot | None:
    project = session.execute(
        select(Project.user_id, Project.revision, Project.thumbnail_revision, Project.canvas_state).where(
            Project.id == pid
        )
    ).one_or_none()
    if project is None or project.thumbnail_revision == project.revision:
        return None
    ids = {
        parsed
        for element in project.canvas_state.get("elements", [])
        if (parsed := _uuid_or_none(element.get("assetId"))) is not None
    }
    # Only the owner's assets are ever drawn, whatever the canvas names.
    rows = session.execute(
        select(Asset.id, Asset.type, Asset.thumbnail_key, Asset.poster_key).where(
            Asset.id == any_(bindparam("ids", list(ids), type_=ARRAY(Uuid))), Asset.user_id == project.user_id
        )
    )
    keys = {str(row.id): row.poster_key if row.type == "video" else row.thumbnail_key for row in rows}
    return Snapshot(project.revision, project.canvas_state, {k: v for k, v in keys.items() if v})


def _record(session: Session, pid: uuid.UUID, revision: int, key: str) -> bool:
    """Point the project at `key` if it is still at `revision`; outbox the thumbnail it replaces.

    True when the row references `key` afterwards, so the caller deletes the object only when it is not.
    """
    row = session.execute(
        select(Project.revision, Project.thumbnail_key).where(Project.id == pid).with_for_update()
    ).one_or_none()
    if row is None:
        return False
    if row.thumbnail_key == key:
        # A twin delivery of this render recorded the same key first (perhaps before a newer save).
        return True
    if row.revision != revision:
        return False
    session.execute(
        update(Project).where(Project.id == pid).values(thumbnail_key=key, thumbnail_revision=revision)
    )
    if row.thumbnail_key:
        session.add(PendingDeletion(storage_key=row.thumbnail_key))
    return True


class _AssetPictures:
    """Decoded asset renditions, each loaded once however many elements show it."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.loaded: dict[str, Image.Image | None] = {}

    def get(self, key: str | None) -> Image.Image | None:
        if key is None:
            return None
        if key not in self.loaded:
            self.loaded[key] = self._load(key)
        return self.loaded[key]

    def _load(self, key: str) -> Image.Image | None:
        try:
            with self.storage.open(key) as stream:
                picture = Image.open(io.BytesIO(stream.read()))
                picture.load()
        except ObjectMissing:
            return None
        except (UnidentifiedImageError, OSError):
            return None  # a damaged rendition draws as a placeholder rather than failing the render
        return picture


def _placed_elements(snapshot: Snapshot, pictures: _AssetPictures) -> list[Placed]:
    """Image and video elements in array (z-) order; text and shapes carry no pixels we can draw."""
    placed = []
    for element in snapshot.canvas.get("elements", []):
        if element.get("type") not in VISUAL_TYPES:
            continue
        picture = pictures.get(snapshot.rendition_keys.get(str(_uuid_or_none(element.get("assetId")))))
        width = element.get("width") or (picture.width if picture else None)
        height = element.get("height") or (picture.height if picture else None)
        if not width or not height:
            continue  # nothing says how big it is
        transform = element["transform"]
        placed.append(
            Placed(
                x=transform["x"],
                y=transform["y"],
                width=width,
                height=height,
                scale=transform["scale"],
                rotation=transform["rotation"],
                image=picture,
            )
        )
    return placed


def _uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None
