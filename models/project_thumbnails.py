"""Project thumbnails as state: what a render draws, and recording the result against the revision it drew."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import events
from models.projects import asset_thumbnail_keys
from models.tables import PendingDeletion, Project


@dataclass(frozen=True)
class Snapshot:
    """What a render needs, read in one short transaction: the canvas and its assets' rendition keys."""

    revision: int
    canvas: dict[str, Any]
    thumbnail_keys: dict[str, str]


def render_snapshot(session: Session, pid: uuid.UUID) -> Snapshot | None:
    """The canvas to render and its assets' thumbnail keys; None when the thumbnail is already current."""
    project = session.execute(
        select(Project.user_id, Project.revision, Project.thumbnail_revision, Project.canvas_state).where(
            Project.id == pid
        )
    ).one_or_none()
    if project is None or project.thumbnail_revision == project.revision:
        return None
    # Only the owner's assets are ever drawn, whatever the canvas names.
    keys = asset_thumbnail_keys(session, project.user_id, project.canvas_state)
    return Snapshot(project.revision, project.canvas_state, keys)


def record_thumbnail(session: Session, pid: uuid.UUID, revision: int, key: str) -> bool:
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
    events.project_changed(session, pid)
    return True
