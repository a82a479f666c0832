"""Bench-only twins of the incremental save, one per strategy it could use instead of the API's.

- `state-whole`: read-modify-write of the whole canvas under `SELECT … FOR UPDATE` (the API's own
  fallback, `project_patches.patch_whole_canvas`): read all of it, apply with jsonpatch, validate all
  of it with the canvas schema, write it all back as a full save would.
- `state-jsonb`: jsonb functions in one statement: the JSON Patch becomes nested `jsonb_set` calls inside
  the UPDATE that checks the revision, so the canvas never leaves PostgreSQL. It handles only `replace`
  operations that keep every element's type (what moving an element sends), and validates only what
  PostgreSQL returns: each touched element (with the same `Element` model) and the element count. That
  makes it a lower bound of that strategy's cost: a faithful version would also need add/remove/move/
  copy/test with RFC 6902's errors, id uniqueness, counts and the asset check written in SQL, and would
  no longer apply the patch with jsonpatch.

    gunicorn 'bench.autosave_twins:bench_app()'   (the API plus PATCH /v1bench/projects/{id}/state-*)
"""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import jsonpointer
from flask import Blueprint, Flask
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from models import project_patches, projects
from models.canvas import Element
from models.canvas_patches import parse_canvas_patch
from models.errors import ValidationFailed
from web.api import _authenticate
from web.app import create_app
from web.auth import current_identity
from web.db import db
from web.services import services
from web.views import projects as views
from web.wsgi import app_from_environment


def bench_app(settings: Any = None) -> Flask:
    """The API plus the twin routes (a gunicorn factory when called without settings)."""
    app = create_app(settings) if settings is not None else app_from_environment()
    bench = Blueprint("bench_autosave", __name__, url_prefix="/v1bench")
    bench.before_request(_authenticate)
    for name, apply in (("whole", patch_whole_canvas), ("jsonb", patch_in_database)):
        bench.add_url_rule(f"/projects/<project_id>/state-{name}", f"patch_state_{name}",
                           _patch_view(apply), methods=["PATCH"])  # fmt: skip
    app.register_blueprint(bench)
    return app


def _patch_view(apply):
    """The API's PATCH view with `apply` in place of `projects.patch_state`."""

    def patch_state(project_id: str):
        settings, expected = services().settings, views._required_revisions()
        patch = parse_canvas_patch(views._read_patch_body(settings.max_project_state_bytes))
        limits = (settings.max_elements_per_project, settings.max_project_state_bytes)
        with db().begin():
            saved = apply(db(), current_identity().user_id, project_id, patch.patch, expected, limits)
        return views._after_save(project_id, saved)

    return patch_state


def patch_whole_canvas(
    session: Session, user_id: str, project_id: str, operations: list[dict[str, Any]],
    expected_revisions: list[int], limits: tuple[int, int],
) -> projects.Saved:  # fmt: skip
    """Read-modify-write of the whole canvas under the row lock."""
    patch = jsonpatch.JsonPatch(operations)
    return project_patches.patch_whole_canvas(
        session, user_id, projects.parse_id(project_id), patch, expected_revisions, limits
    )


def patch_in_database(
    session: Session, user_id: str, project_id: str, operations: list[dict[str, Any]],
    expected_revisions: list[int], limits: tuple[int, int],
) -> projects.Saved:  # fmt: skip
    """One UPDATE: nested jsonb_set under the revision check, returning what to validate."""
    max_elements = limits[0]
    expression, params, touched, exists = "canvas_state", {}, [], []
    for number, operation in enumerate(operations):
        parts = jsonpointer.JsonPointer(operation["path"]).parts
        if operation["op"] != "replace" or not parts or parts[-1] == "type":
            raise ValidationFailed("The jsonb twin applies only `replace` operations that keep types.")
        expression = (
            f"jsonb_set({expression}, CAST(:path{number} AS text[]), CAST(:value{number} AS jsonb), false)"
        )
        exists.append(f"canvas_state #> CAST(:path{number} AS text[]) IS NOT NULL")
        params |= {f"path{number}": parts, f"value{number}": json.dumps(operation["value"])}
        if parts[0] == "elements" and len(parts) > 1:
            touched.append(int(parts[1]))
    returned = "".join(f", (canvas_state->'elements'->{index})::text AS e{index}" for index in touched)
    row = session.execute(
        text(f"UPDATE projects SET canvas_state = {expression}, revision = revision + 1, "
             "last_saved_at = now(), updated_at = now() "
             "WHERE id = :id AND user_id = :user_id AND revision = ANY(:revisions) "
             f"{''.join(' AND ' + e for e in exists)} "
             "RETURNING revision, last_saved_at, image_count, video_count, "
             f"jsonb_array_length(canvas_state->'elements') AS element_count{returned}"),
        {"id": projects.parse_id(project_id), "user_id": user_id, "revisions": expected_revisions, **params},
    ).one_or_none()  # fmt: skip
    if row is None:
        projects._refuse_failed_save(session, user_id, projects.parse_id(project_id))
    if row.element_count > max_elements:
        raise ValidationFailed(f"A project holds at most {max_elements} elements.")
    for index in touched:
        try:
            Element.model_validate_json(getattr(row, f"e{index}"))
        except PydanticValidationError:
            raise ValidationFailed(f"Element {index} does not match the schema.") from None
    return projects.Saved(row.revision, row.last_saved_at, row.image_count, row.video_count)
