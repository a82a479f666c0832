"""Incremental saves of a project's canvas: a JSON Patch applied under the row lock, stored as a full save."""

from __future__ import annotations

import copy
import uuid

from jsonpatch import JsonPatch
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.canvas import parse_canvas_state
from models.canvas_patches import (
    NeedsWholeCanvas,
    PatchedCanvas,
    StoredSkeleton,
    apply_canvas_patch,
    apply_to_skeleton,
    asset_references,
    named_elements,
)
from models.errors import NotFound
from models.projects import Saved, check_asset_ownership, parse_id, stale_revision, store_state
from models.tables import Project

# A patch naming more stored elements than this is applied to the whole canvas read at once.
MAX_NAMED_ELEMENTS = 32


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
    Usually only the elements the patch names are read, and PostgreSQL writes the changed parts into
    the stored canvas; a patch that needs more is applied to the whole canvas.
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
                check_asset_ownership(session, user_id, patched.changed, already_named)
                return _store_patched(session, user_id, pid, revision, patched)
    return patch_whole_canvas(session, user_id, pid, patch, expected_revisions, limits)


def _read_skeleton(
    session: Session, user_id: str, pid: uuid.UUID, named: list[int], expected_revisions: list[int]
) -> tuple[int, StoredSkeleton | None]:
    """Lock the row; read its top-level members, element ids and types, text size and the named elements."""
    # The canvas is detoasted once (`|| '{}'` makes an in-memory copy), not once per expression.
    row = session.execute(
        text(
            "SELECT p.revision, d.doc - 'elements' AS top, octet_length(d.doc::text) AS text_bytes, "
            "CASE WHEN jsonb_typeof(d.doc -> 'elements') = 'array' "
            "THEN jsonb_array_length(d.doc -> 'elements') END AS element_count, "
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
        raise stale_revision(row.revision)
    # A canvas stored before the schema held (no list, elements without ids) is left to the whole path.
    if row.element_count is None or not len(row.ids) == len(row.types) == row.element_count:
        return row.revision, None
    if not all(isinstance(element_id, str) for element_id in row.ids):
        return row.revision, None
    loaded_elements = {
        index: element
        for index, element in zip(named, row.loaded or [], strict=False)
        if index < row.element_count
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


def patch_whole_canvas(
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
        raise stale_revision(current.revision)
    already_named = asset_references(current.canvas_state)
    raw_state = apply_canvas_patch(current.canvas_state, patch, max_bytes)
    state = parse_canvas_state(raw_state, max_elements)
    check_asset_ownership(session, user_id, list(enumerate(state.elements)), already_named)
    return store_state(session, user_id, pid, raw_state.decode(), state, [current.revision])
