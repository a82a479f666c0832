"""Projects: list, create, read with its canvas, autosave with revisions, rename, delete."""

from __future__ import annotations

import structlog
from flask import Blueprint, request
from spectree import Response

from core.taskqueue import RENDER_PROJECT_THUMBNAIL
from models import project_patches, projects, thumbnail_schedule
from models.canvas import CanvasState, parse_canvas_state
from models.canvas_patches import MEDIA_TYPE as PATCH_MEDIA_TYPE
from models.canvas_patches import parse_canvas_patch
from models.errors import PayloadTooLarge, PreconditionRequired, UnsupportedMediaType
from models.projects import etag
from models.tables import Project
from web.auth import current_identity, signed_in_user
from web.conditional import tagged_json
from web.db import db
from web.enqueue import enqueue
from web.idempotency import idempotent
from web.openapi import api, refuse_bad_query
from web.schemas import dump, epoch_ms
from web.schemas.projects import (
    PATCH_REFUSALS,
    CanvasPatchIn,
    CreateIn,
    ListQuery,
    PatchHeaders,
    ProjectOut,
    ProjectPage,
    ProjectSummaryOut,
    RenameIn,
    SavedOut,
)
from web.services import services

bp = Blueprint("projects", __name__, url_prefix="/projects")
log = structlog.get_logger(__name__)
# Revisions are PostgreSQL integers; longer digit strings can never match and must not reach the query.
MAX_REVISION = 2**31 - 1


@bp.get("")
@api.validate(
    query=ListQuery, resp=Response(HTTP_200=ProjectPage), tags=["projects"], before=refuse_bad_query
)
def list_projects():
    """The caller's projects, last saved first (metadata only)."""
    query = request.context.query  # type: ignore[attr-defined]
    with db().begin():
        user_id = signed_in_user().user_id
        rows, next_cursor = projects.list_projects(db(), user_id, query.limit, query.cursor)
    return dump(ProjectPage(items=[_summary(row) for row in rows], next_cursor=next_cursor))


@bp.post("")
@idempotent
@api.validate(json=CreateIn, resp=Response("HTTP_409", HTTP_201=ProjectOut), tags=["projects"])
def create_project():
    """A new empty project; named `Iskra Project NN` unless a name is given."""
    body = request.context.json  # type: ignore[attr-defined]
    with db().begin():
        project = projects.create_project(
            db(),
            signed_in_user().user_id,
            body.name if body else None,
            services().settings.max_projects_per_user,
        )
    headers = {"ETag": etag(project.revision), "Location": f"/v1/projects/{project.id}"}
    return dump(_full(project, {})), 201, headers


@bp.get("/<project_id>")
@api.validate(resp=Response("HTTP_304", HTTP_200=ProjectOut), tags=["projects"])
def get_project(project_id: str):
    """The project with its canvas and its assets' signed thumbnail URLs; 304 when If-None-Match has it."""
    user_id = current_identity().user_id
    with db().begin():
        project = projects.get_project(db(), user_id, project_id)
        keys = projects.asset_thumbnail_keys(db(), user_id, project.canvas_state)
    # `"<revision>-<hash of the body>"`: If-Match reads the revision, If-None-Match the whole tag.
    return tagged_json(dump(_full(project, keys)), tag_prefix=f"{project.revision}-")


@bp.put("/<project_id>/state")
@api.validate(
    json=CanvasState, resp=Response("HTTP_412", HTTP_200=SavedOut), tags=["projects"], skip_validation=True
)
def save_state(project_id: str):
    """Autosave the canvas; a stale If-Match is refused (412), without it the last write wins."""
    settings = services().settings
    raw = _read_body(settings.max_project_state_bytes)
    state = parse_canvas_state(raw, settings.max_elements_per_project)
    with db().begin():
        saved = projects.save_state(
            db(), current_identity().user_id, project_id, raw.decode(), state, _expected_revisions()
        )
    return _after_save(project_id, saved)


@bp.patch("/<project_id>/state")
@api.validate(
    json=CanvasPatchIn,
    headers=PatchHeaders,
    resp=Response(*PATCH_REFUSALS, HTTP_200=SavedOut),
    tags=["projects"],
    skip_validation=True,
)
def patch_state(project_id: str):
    """Incremental autosave: a JSON Patch against the If-Match revision (required, 428 without it)."""
    settings, expected = services().settings, _required_revisions()
    patch = parse_canvas_patch(_read_patch_body(settings.max_project_state_bytes))
    limits = (settings.max_elements_per_project, settings.max_project_state_bytes)
    with db().begin():
        saved = project_patches.patch_state(
            db(), current_identity().user_id, project_id, patch, expected, limits
        )
    return _after_save(project_id, saved)


def _after_save(project_id: str, saved: projects.Saved):
    """What every committed save of the canvas does next, full or incremental, and its 200 answer."""
    _schedule_thumbnail(project_id)
    body = SavedOut(revision=saved.revision, last_saved_at=epoch_ms(saved.last_saved_at),
                    image_count=saved.image_count, video_count=saved.video_count)  # fmt: skip
    return dump(body), 200, {"ETag": etag(saved.revision)}


@bp.patch("/<project_id>")
@api.validate(json=RenameIn, resp=Response(HTTP_200=ProjectSummaryOut), tags=["projects"])
def rename_project(project_id: str):
    """Rename the project (trimmed, 1-100 characters); the canvas and its revision are untouched."""
    body: RenameIn = request.context.json  # type: ignore[attr-defined]
    with db().begin():
        project = projects.rename_project(db(), current_identity().user_id, project_id, body.name)
    return dump(_summary(project)), 200, {"ETag": etag(project.revision)}


@bp.delete("/<project_id>")
@api.validate(resp=Response("HTTP_204"), tags=["projects"])
def delete_project(project_id: str):
    """Delete the project for good; the assets it showed are kept."""
    with db().begin():
        projects.delete_project(db(), current_identity().user_id, project_id)
    return "", 204


def _read_body(limit: int) -> bytes:
    """The raw body, refused with 413 before any parsing when it is over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"A canvas state is at most {limit} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"A canvas state is at most {limit} bytes.")
    return raw


def _read_patch_body(limit: int) -> bytes:
    """The body of an incremental save, which must be sent as a JSON Patch (415 otherwise)."""
    if request.mimetype != PATCH_MEDIA_TYPE:
        refused = UnsupportedMediaType(f"An incremental save is a JSON Patch sent as {PATCH_MEDIA_TYPE}.")
        refused.headers["Accept-Patch"] = PATCH_MEDIA_TYPE  # RFC 5789 §3.1
        raise refused
    return _read_body(limit)


def _required_revisions() -> list[int]:
    """The revisions If-Match accepts; a change to an unknown base (no If-Match, or `*`) is never applied."""
    expected = _expected_revisions()
    if expected is None:
        raise PreconditionRequired("Send If-Match with the ETag of the revision the patch was made against.")
    return expected


def _expected_revisions() -> list[int] | None:
    """The revisions If-Match accepts; None when absent or `*` (any current revision, last write wins).

    Weak tags (W/"7") count as their revision: a proxy that compresses the GET weakens its ETag, and
    a revision number names the canvas exactly whatever the transfer encoding. A read's tag
    (`"7-<hash>"`) counts as its revision too: the hash covers thumbnails and links, not the canvas.
    """
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    # Werkzeug reads an empty tag (`If-Match: ""`) as None; it names no revision.
    revisions = (tag.partition("-")[0] for tag in request.if_match.as_set(include_weak=True) if tag)
    return sorted(
        int(revision)
        for revision in revisions
        if revision.isascii() and revision.isdigit() and len(revision) <= 10 and int(revision) <= MAX_REVISION
    )


def _schedule_thumbnail(project_id: str) -> None:
    """Enqueue the render this save needs, if none scheduled will draw it; never fails the committed save."""
    settings, pid, user_id = services().settings, projects.parse_id(project_id), current_identity().user_id
    try:
        delay = thumbnail_schedule.render_delay(
            services().redis, settings.redis_key_prefix, user_id, pid,
            settings.project_thumbnail_debounce_seconds, settings.project_thumbnail_user_interval_seconds,
        )  # fmt: skip
        if delay is not None:
            enqueue(RENDER_PROJECT_THUMBNAIL, str(pid), user_id, countdown=delay)
    except Exception as error:  # Redis or the broker is down; the next save schedules it again.
        log.warning("project_thumbnail_not_scheduled", project_id=project_id, error=repr(error))


def _summary(project: Project) -> ProjectSummaryOut:
    return ProjectSummaryOut(
        id=str(project.id),
        name=project.name,
        image_count=project.image_count,
        video_count=project.video_count,
        thumbnail_url=services().signed_url(project.thumbnail_key),
        revision=project.revision,
        last_saved_at=epoch_ms(project.last_saved_at),
        created_at=epoch_ms(project.created_at),
    )


def _full(project: Project, asset_keys: dict[str, str]) -> ProjectOut:
    urls = {asset_id: services().signed_url(key) for asset_id, key in asset_keys.items()}
    return ProjectOut(
        **_summary(project).model_dump(), canvas_state=project.canvas_state, asset_thumbnails=urls
    )
