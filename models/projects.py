"""Projects: listing, creation under the per-user cap, autosaves with revisions, rename and delete."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from jsonpatch import JsonPatch
from sqlalchemy import String, Uuid, any_, bindparam, cast, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session, load_only

from models.canvas import CanvasState, Element, parse_canvas_state
from models.canvas_patches import (
    AssetReference,
    NeedsWholeCanvas,
    PatchedCanvas,
    StoredSkeleton,
    apply_canvas_patch,
    apply_to_skeleton,
    asset_references,
    named_elements,
)
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
# A patch naming more stored elements than this is applied to the whole canvas read at once.
MAX_NAMED_ELEMENTS = 32


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
    _check_asset_ownership(session, user_id, list(enumerate(state.elements)))
    return _store(session, user_id, pid, raw_state, state, expected_revisions)


def patch_state(
    session: Session,
    user_id: str,
    project_id: str,
    patch: JsonPatch,
    expected_revisions: list[int],
    limits: tuple[int, int],
) -> Saved:
    """Apply a JSON Patch to the If-Match revision under a row lock; stored as a full save of the result.

    `limits` is (most elements, most bytes) of a canvas state. The row is read `FOR UPDATE`, so a
    concurrent save waits for this transaction and then re-checks its own revision: none is lost.
    Usually only the elements the patch names are read, and PostgreSQL rebuilds the canvas from the
    stored elements and the changed ones; a patch that needs more sees the whole canvas.
    """
    pid = parse_id(project_id)
    named = named_elements(patch, MAX_NAMED_ELEMENTS)
    if named is not None:
        revision, skeleton = _read_skeleton(session, user_id, pid, named, expected_revisions)
        if skeleton is not None:
            already_named = asset_references({"elements": list(skeleton.loaded.values())})
            try:
                # A copy: applying mutates the operations' values, and the whole canvas may need them.
                patched = apply_to_skeleton(skeleton, JsonPatch(copy.deepcopy(patch.patch)), limits)
            except NeedsWholeCanvas:
                pass
            else:
                _check_asset_ownership(session, user_id, patched.changed, already_named)
                return _store_patched(session, user_id, pid, revision, patched)
    return _patch_whole_canvas(session, user_id, pid, patch, expected_revisions, limits)


def _read_skeleton(
    session: Session, user_id: str, pid: uuid.UUID, named: list[int], expected_revisions: list[int]
) -> tuple[int, StoredSkeleton | None]:
    """Lock the row; read its top-level members, element ids and types, text size and the named elements."""
    # The canvas is detoasted once (`|| '{}'` makes an in-memory copy), not once per expression.
    row = session.execute(
        text(
            "SELECT p.revision, d.doc - 'elements' AS top, octet_length(d.doc::text) AS text_bytes, "
            "CASE WHEN jsonb_typeof(d.doc -> 'elements') = 'array' "
            "THEN jsonb_array_length(d.doc -> 'elements') END AS count, "
            "jsonb_path_query_array(d.doc, '$.elements[*].id') AS ids, "
            "jsonb_path_query_array(d.doc, '$.elements[*].type') AS types, "
            "(SELECT jsonb_agg(d.doc -> 'elements' -> n.index ORDER BY n.position) "
            " FROM unnest(CAST(:named AS integer[])) WITH ORDINALITY AS n(index, position)) AS loaded "
            "FROM projects p CROSS JOIN LATERAL (SELECT CASE WHEN jsonb_typeof(p.canvas_state) = 'object' "
            "THEN p.canvas_state || '{}'::jsonb END AS doc OFFSET 0) d "
            "WHERE p.id = :id AND p.user_id = :user_id FOR UPDATE OF p"
        ),
        {"id": pid, "user_id": user_id, "named": named},
    ).one_or_none()
    if row is None:
        raise NotFound("No such project.")
    if row.revision not in expected_revisions:
        raise _stale(row.revision)
    # A canvas stored before the schema held (no list, elements without ids) is left to the whole path.
    if row.count is None or not len(row.ids) == len(row.types) == row.count:
        return row.revision, None
    if not all(isinstance(element_id, str) for element_id in row.ids):
        return row.revision, None
    loaded_elements = {
        index: element for index, element in zip(named, row.loaded or [], strict=False) if index < row.count
    }
    return row.revision, StoredSkeleton(row.top, row.ids, row.types, row.text_bytes, loaded_elements)


def _store_patched(
    session: Session, user_id: str, pid: uuid.UUID, revision: int, patched: PatchedCanvas
) -> Saved:
    """One UPDATE that writes the changed members and elements into the stored canvas."""
    params = {"top": patched.top_json, "removed": patched.removed_keys, "images": patched.images,
              "videos": patched.videos, "id": pid, "user_id": user_id, "revision": revision}  # fmt: skip
    if patched.in_place:
        # Each jsonb_set rewrites the canvas once in memory: cheaper than rebuilding it for a few elements.
        canvas = "(p.canvas_state - CAST(:removed AS text[])) || CAST(:top AS jsonb)"
        changed = [(index, literal) for index, literal in enumerate(patched.literals) if literal is not None]
        for number, (index, literal) in enumerate(changed):
            canvas = (
                f"jsonb_set({canvas}, ARRAY['elements', :index{number}], CAST(:element{number} AS jsonb))"
            )
            params |= {f"index{number}": str(index), f"element{number}": literal}
    else:
        # Stored elements pass through as text beside the changed ones; PostgreSQL parses the result once.
        canvas = (
            "CAST(:top AS jsonb) || jsonb_build_object('elements', CAST(COALESCE('[' || (SELECT string_agg("
            "CASE WHEN s.source IS NULL THEN s.literal ELSE (x.elements -> s.source)::text END, "
            "',' ORDER BY s.position) "
            "FROM (SELECT p.canvas_state -> 'elements' AS elements OFFSET 0) x, "
            "unnest(CAST(:sources AS integer[]), CAST(:literals AS text[])) "
            "WITH ORDINALITY AS s(source, literal, position)) || ']', '[]') AS jsonb))"
        )
        params |= {"sources": patched.sources, "literals": patched.literals}
    row = session.execute(
        text(
            f"UPDATE projects p SET canvas_state = {canvas}, "  # noqa: S608 - only parameter names are formatted
            "revision = p.revision + 1, image_count = :images, video_count = :videos, "
            "last_saved_at = now(), updated_at = now() "
            "WHERE p.id = :id AND p.user_id = :user_id AND p.revision = :revision "
            "RETURNING p.revision, p.last_saved_at"
        ),
        params,
    ).one()
    return Saved(row.revision, row.last_saved_at, patched.images, patched.videos)


def _patch_whole_canvas(
    session: Session,
    user_id: str,
    pid: uuid.UUID,
    patch: JsonPatch,
    expected_revisions: list[int],
    limits: tuple[int, int],
) -> Saved:
    """Read the whole canvas under the lock, apply, validate it all and store it as a full save would."""
    max_elements, max_bytes = limits
    current = session.execute(
        select(Project.revision, Project.canvas_state)
        .where(Project.id == pid, Project.user_id == user_id)
        .with_for_update()
    ).one_or_none()
    if current is None:
        raise NotFound("No such project.")
    if current.revision not in expected_revisions:
        raise _stale(current.revision)
    already_named = asset_references(current.canvas_state)
    raw_state = apply_canvas_patch(current.canvas_state, patch, max_bytes)
    state = parse_canvas_state(raw_state, max_elements)
    _check_asset_ownership(session, user_id, list(enumerate(state.elements)), already_named)
    return _store(session, user_id, pid, raw_state.decode(), state, [current.revision])


def _store(
    session: Session,
    user_id: str,
    pid: uuid.UUID,
    raw_state: str,
    state: CanvasState,
    expected_revisions: list[int] | None,
) -> Saved:
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
        .returning(Project.revision, Project.last_saved_at)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        _refuse_failed_save(session, user_id, pid)
    return Saved(row.revision, row.last_saved_at, images, videos)


def _refuse_failed_save(session: Session, user_id: str, pid: uuid.UUID) -> None:
    # Only reached when the UPDATE matched nothing: tell a missing project from a stale revision.
    current = session.scalar(select(Project.revision).where(Project.id == pid, Project.user_id == user_id))
    if current is None:
        raise NotFound("No such project.")
    raise _stale(current)


def _stale(current: int) -> PreconditionFailed:
    error = PreconditionFailed(
        f"The project is at revision {current}; reload it and save again.", currentRevision=current
    )
    error.headers["ETag"] = etag(current)
    return error


def _check_asset_ownership(
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
    ids = list({parsed for _, element in checked if (parsed := _uuid_or_none(element.assetId)) is not None})
    owned = dict(
        session.execute(
            select(Asset.id, Asset.type).where(
                Asset.id == any_(bindparam("asset_ids", ids, type_=ARRAY(Uuid))), Asset.user_id == user_id
            )
        ).all()
    )
    for index, element in checked:
        asset_type = owned.get(_uuid_or_none(element.assetId))
        if asset_type is None or (element.assetType is not None and element.assetType != asset_type):
            raise ValidationFailed(
                f"Element {element.id!r} references an asset that is not one of yours.",
                elementId=element.id,
                elementIndex=index,
                assetId=element.assetId,
            )


def asset_thumbnail_keys(session: Session, user_id: str, state: dict) -> dict[str, str]:
    """{assetId: thumbnail or poster key} for the user's assets the canvas references."""
    ids = {
        parsed
        for element in state.get("elements", [])
        if (parsed := _uuid_or_none(element.get("assetId"))) is not None
    }
    if not ids:
        return {}
    rows = session.execute(
        select(Asset.id, Asset.type, Asset.thumbnail_key, Asset.poster_key).where(
            Asset.id == any_(bindparam("asset_ids", list(ids), type_=ARRAY(Uuid))), Asset.user_id == user_id
        )
    )
    keys = {str(row.id): row.poster_key if row.type == "video" else row.thumbnail_key for row in rows}
    return {asset_id: key for asset_id, key in keys.items() if key}


def rename_project(session: Session, user_id: str, project_id: str, name: str) -> Project:
    """The renamed project (the canvas and its revision are untouched)."""
    project = get_project(session, user_id, project_id)
    project.name = name
    session.flush()
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
    if deleted.thumbnail_key:
        session.add(PendingDeletion(storage_key=deleted.thumbnail_key))


def etag(revision: int) -> str:
    """The strong entity tag of a project revision."""
    return f'"{revision}"'


def _uuid_or_none(value: object) -> uuid.UUID | None:
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
