"""Project thumbnails: render the latest saved canvas into a WebP and record it on the project row."""

from __future__ import annotations

import io
import uuid
from typing import Any

import structlog
from PIL import Image, UnidentifiedImageError

from core import taskqueue
from models.errors import ObjectMissing
from models.project_thumbnails import Snapshot, record_thumbnail, render_snapshot
from models.projects import asset_uuid
from models.storage.keys import project_thumbnail_key
from models.thumbnail_schedule import release
from workers.context import current
from workers.media.canvas_render import Placed, parse_colour, render
from workers.policy import task

THUMBNAIL_SIZE = 400
VISUAL_TYPES = ("image", "video")
# Asset thumbnails and posters are at most 400 px on a side; anything far larger in storage is not one,
# and is drawn as a placeholder rather than decoded.
MAX_SOURCE_PIXELS = (2 * THUMBNAIL_SIZE) ** 2
log = structlog.get_logger(__name__)


@task(taskqueue.RENDER_PROJECT_THUMBNAIL, soft_time_limit=60, time_limit=90)
def render_project_thumbnail(project_id: str, user_id: str | None = None) -> None:
    """Render the project's current canvas unless its thumbnail is already of the current revision.

    `user_id` (the owner, sent by the save that scheduled this render) releases the schedule's hold
    before the canvas is read, so a save landing after that read schedules the render that draws it.
    """
    context, pid = current(), uuid.UUID(project_id)
    if user_id is not None:
        try:
            release(context.redis, context.settings.redis_key_prefix, user_id, pid)
        except Exception as error:  # Redis is down: the hold lapses on its own (HOLD_SECONDS)
            log.warning("project_render_hold_not_released", project_id=project_id, error=repr(error))
    with context.sessions.begin() as session:
        snapshot = render_snapshot(session, pid)
    if snapshot is None:
        return
    elements = _placed_elements(snapshot, _AssetPictures(context.storage))
    webp = render(elements, parse_colour(snapshot.canvas.get("backgroundColor")), THUMBNAIL_SIZE)
    key = project_thumbnail_key(pid, snapshot.revision)
    context.storage.put(key, io.BytesIO(webp), content_type="image/webp")
    with context.sessions.begin() as session:
        recorded = record_thumbnail(session, pid, snapshot.revision, key)
    if not recorded:
        # A save landed while rendering; its own scheduled render will draw the newer canvas.
        context.storage.delete(key)


@task(taskqueue.LEGACY_RENDER_PROJECT_THUMBNAIL, soft_time_limit=10, time_limit=20)
def forward_legacy_render(project_id: str) -> None:
    """Send a render queued under the old name on to the renders queue, so it never runs among uploads."""
    taskqueue.send(current().celery, taskqueue.RENDER_PROJECT_THUMBNAIL, project_id)


class _AssetPictures:
    """Decoded asset renditions (RGBA), each opened and decoded at most once per render."""

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
                if picture.width * picture.height > MAX_SOURCE_PIXELS:
                    return None
                picture.load()
        except ObjectMissing:
            return None
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            return None  # a damaged rendition draws as a placeholder rather than failing the render
        return picture if picture.mode == "RGBA" else picture.convert("RGBA")


def _placed_elements(snapshot: Snapshot, pictures: _AssetPictures) -> list[Placed]:
    """Image and video elements in array (z-) order; text and shapes carry no pixels we can draw."""
    placed = []
    for element in snapshot.canvas.get("elements", []):
        if element.get("type") not in VISUAL_TYPES:
            continue
        picture = pictures.get(snapshot.thumbnail_keys.get(str(asset_uuid(element.get("assetId")))))
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
