"""Projects: listing, creation under the per-user cap, autosaves with revisions, rename and delete."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import String, Uuid, any_, bindparam, cast, delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session, load_only

from models import events
from models.canvas import CanvasState, Element
from models.canvas_patches import AssetReference
from models.errors import BadRequest, NotFound, PreconditionFailed, TooManyProjects, ValidationFailed
from models.tables import Asset, PendingDeletion, Project, User

DEFAULT_NAME = "Iskra Project {number:02d}"
LISTED_COLUMNS = (
    Project.id,
    Project.name,
    Project.image_count,
    Project.video_count,
    Project.thumbnail_key,
    Project.revision,
    Project.last_saved_at,
    Project.created_at,
)


@dataclass(frozen=True)
class Saved:
    revision: int
    last_saved_at: datetime
    image_count: int
    video_count: int


def parse_id(project_id: str) -> uuid.UUID:
    """The project's UUID; anything else names no project (404, like someone else's)."""
    try:
        return uuid.UUID(project_id)
    except ValueError:
        raise NotFound("No such project.") from None


def list_projects(
    session: Session, user_id: str, limit: int, cursor: str | None
) -> tuple[list[Project], str | None]:
    """One page of the user's projects, last saved first, and the cursor of the next page (or None)."""
    query = (
        select(Project)
        .options(load_only(*LISTED_COLUMNS))
        .where(Project.user_id == user_id)
        .order_by(Project.last_saved_at.desc(), Project.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        saved_at, last_id = _decode_cursor(cursor)
        query = query.where(tuple_(Project.last_saved_at, Project.id) < tuple_(saved_at, last_id))
    rows = list(session.scalars(query))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], _encode_cursor(last.last_saved_at, last.id)


def create_project(session: Session, user_id: str, name: str | None, max_projects: int) -> Project:
    """A new empty project; the user row is locked so concurrent creates cannot pass the cap together."""
    session.execute(select(User.user_id).where(User.user_id == user_id).with_for_update())
    count = session.scalar(select(func.count()).select_from(Project).where(Project.user_id == user_id)) or 0
    if count >= max_projects:
        raise TooManyProjects(f"A user holds at most {max_projects} projects.", limit=max_projects)
    project = Project(
        user_id=user_id,
        name=name or DEFAULT_NAME.format(number=count + 1),
        canvas_state={"elements": [], "lastModified": 0},
    )
    session.add(project)
    session.flush()
    session.refresh(project)
    events.project_changed(session, project.id)
    return project


def get_project(session: Session, user_id: str, project_id: str) -> Project:
    """The user's project, or NotFound when it is missing or someone else's."""
    project = session.scalar(
        select(Project).where(Project.id == parse_id(project_id), Project.user_id == user_id)
    )
    if project is None:
        raise NotFound("No such project.")
    return project


def save_state(
    session: Session,
    user_id: str,
    project_id: str,
    raw_state: str,
    state: CanvasState,
    expected_revisions: list[int] | None,
) -> Saved:
    """Store a validated canvas as sent, in one UPDATE; `expected_revisions` is the If-Match (None: any)."""
    pid = parse_id(project_id)
    check_asset_ownership(session, user_id, list(enumerate(state.elements)))
    return store_state(session, user_id, pid, raw_state, state, expected_revisions)


def store_state(
    session: Session,
    user_id: str,
    pid: uuid.UUID,
    raw_state: str,
    state: CanvasState,
    expected_revisions: list[int] | None,
) -> Saved:
    """The one UPDATE of every save: the canvas text as validated, the revision bumped, counts recounted."""
    images, videos = state.counts()
    conditions = [Project.id == pid, Project.user_id == user_id]
    if expected_revisions is not None:
        conditions.append(Project.revision.in_(expected_revisions))
    # The text goes to jsonb exactly as it was validated (a full save's body as sent): no defaults added.
    row = session.execute(
        update(Project)
        .where(*conditions)
        .values(
            canvas_state=cast(bindparam("raw_state", raw_state, type_=String), JSONB),
            revision=Project.revision + 1,
            image_count=images,
            video_count=videos,
            last_saved_at=func.now(),
            updated_at=func.now(),
        )
        # The save's event is recorded by this same statement (a save stays one UPDATE).
        .returning(Project.revision, Project.last_saved_at, events.project_notification())
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        _refuse_failed_save(session, user_id, pid)
    return Saved(row.revision, row.last_saved_at, images, videos)


def _refuse_failed_save(session: Session, user_id: str, pid: uuid.UUID) -> NoReturn:
    # Only reached when the UPDATE matched nothing: tell a missing project from a stale revision.
    current = session.scalar(select(Project.revision).where(Project.id == pid, Project.user_id == user_id))
    if current is None:
        raise NotFound("No such project.")
    raise stale_revision(current)


def stale_revision(current: int) -> PreconditionFailed:
    """The 412 of a save whose If-Match is not the current revision, with the current ETag."""
    error = PreconditionFailed(
        f"The project is at revision {current}; reload it and save again.", currentRevision=current
    )
    error.headers["ETag"] = etag(current)
    return error


def check_asset_ownership(
    session: Session,
    user_id: str,
    elements: list[tuple[int, Element]],
    already_named: Container[AssetReference] = frozenset(),
) -> None:
    """Refuse (index, element)s whose asset is not the caller's (or not of the type the element claims).

    Pairs of (assetId, assetType) in `already_named` were checked when the stored canvas was saved.
    """
    checked = [
        (index, element)
        for index, element in elements
        if element.assetId is not None and (element.assetId, element.assetType) not in already_named
    ]
    if not checked:
        return
    ids = list({parsed for _, element in checked if (parsed := asset_uuid(element.assetId)) is not None})
    owned = dict(
        session.execute(
            select(Asset.id, Asset.type).where(
                Asset.id == any_(bindparam("asset_ids", ids, type_=ARRAY(Uuid))), Asset.user_id == user_id
            )
        ).all()
    )
    for index, element in checked:
        asset_id = asset_uuid(element.assetId)
        asset_type = owned.get(asset_id) if asset_id is not None else None
        if asset_type is None or (element.assetType is not None and element.assetType != asset_type):
            raise ValidationFailed(
                f"Element {element.id!r} references an asset that is not one of yours.",
                elementId=element.id,
                elementIndex=index,
                assetId=element.assetId,
            )


def asset_thumbnail_keys(session: Session, user_id: str, state: dict) -> dict[str, str]:
    """{assetId: thumbnail key} of the user's assets the canvas references (a video's is its poster)."""
    ids = {parsed for element in state.get("elements", []) if (parsed := asset_uuid(element.get("assetId")))}
    if not ids:
        return {}
    rows = session.execute(
        select(Asset.id, Asset.thumbnail_key).where(
            Asset.id == any_(bindparam("asset_ids", list(ids), type_=ARRAY(Uuid))),
            Asset.user_id == user_id,
            Asset.thumbnail_key.is_not(None),
        )
    )
    return {str(row.id): row.thumbnail_key for row in rows}


def rename_project(session: Session, user_id: str, project_id: str, name: str) -> Project:
    """The renamed project (the canvas and its revision are untouched)."""
    project = get_project(session, user_id, project_id)
    project.name = name
    session.flush()
    events.project_changed(session, project.id)
    return project


def delete_project(session: Session, user_id: str, project_id: str) -> None:
    """Remove the project for good (its assets stay); its thumbnail object goes to the deletion outbox."""
    deleted = session.execute(
        delete(Project)
        .where(Project.id == parse_id(project_id), Project.user_id == user_id)
        .returning(Project.thumbnail_key)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if deleted is None:
        raise NotFound("No such project.")
    events.project_deleted(session, user_id, parse_id(project_id))
    if deleted.thumbnail_key:
        session.add(PendingDeletion(storage_key=deleted.thumbnail_key))


def etag(revision: int) -> str:
    """The strong entity tag of a project revision."""
    return f'"{revision}"'


def asset_uuid(value: object) -> uuid.UUID | None:
    """An element's `assetId` as a UUID, or None when it names no asset we could hold."""
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _encode_cursor(saved_at: datetime, project_id: uuid.UUID) -> str:
    raw = json.dumps([saved_at.isoformat(), str(project_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        saved_at, project_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(saved_at), uuid.UUID(project_id)
    except (ValueError, TypeError):
        raise BadRequest("The cursor is not one this API handed out.") from None
