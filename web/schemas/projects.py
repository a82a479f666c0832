"""Bodies for /v1/projects: create, rename, list pages, one project with its canvas, saves and patches."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, WithJsonSchema

from models.canvas import CanvasState
from web.schemas import Body, DocumentedAs, Query

# Trimmed first, then 1-100 characters with no control characters (PostgreSQL text refuses NUL).
# Limits on the trimmed name are no JSON Schema of the sent one (a tab or 300 spaces around a name
# are trimmed away), so the document states them in words.
ProjectName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$"),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "Trimmed of surrounding whitespace, then 1-100 characters, no control characters.",
        }
    ),
]


class CreateIn(Body):
    name: ProjectName | None = None


class RenameIn(Body):
    name: ProjectName


class ListQuery(Query):
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(max_length=200)] | None = None


class ProjectSummaryOut(Body):
    id: str
    name: str
    image_count: int
    video_count: int
    thumbnail_url: str | None
    revision: int
    last_saved_at: int
    created_at: int


class ProjectPage(Body):
    items: list[ProjectSummaryOut]
    next_cursor: str | None


class ProjectOut(ProjectSummaryOut):
    # Sent as stored: every save was validated against CanvasState, so the document can promise its shape.
    canvas_state: Annotated[dict[str, Any], DocumentedAs(CanvasState)]
    asset_thumbnails: dict[str, str]


class SavedOut(Body):
    revision: int
    last_saved_at: int
    image_count: int
    video_count: int


class PatchOperation(BaseModel):
    """One RFC 6902 operation; paths are JSON Pointers into the canvasState (`/elements/3/transform/x`)."""

    model_config = ConfigDict(populate_by_name=True)

    op: Literal["add", "remove", "replace", "move", "copy", "test"]
    path: str
    value: Any = None
    from_: str | None = Field(None, alias="from")


class CanvasPatchIn(RootModel[list[PatchOperation]]):
    """An incremental save: a JSON Patch sent as application/json-patch+json (documented, read by hand)."""

    model_config = ConfigDict(json_schema_extra={"x-media-type": "application/json-patch+json"})


class PatchHeaders(BaseModel):
    if_match: str = Field(
        alias="If-Match", description="The ETag of the revision the patch was made against; 428 without it."
    )


# Every refusal of an incremental save besides the 422 that spectree documents for a body.
PATCH_REFUSALS = ("HTTP_400", "HTTP_404", "HTTP_409", "HTTP_412", "HTTP_413", "HTTP_415", "HTTP_428")
