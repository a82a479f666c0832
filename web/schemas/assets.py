"""Bodies for /v1/assets: generation metadata, upload hints, imports, the asset and its pages."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, StrictInt, model_validator

from models.asset_lifecycle import Status
from web.schemas import Body, Query

# PostgreSQL's jsonb refuses \u0000, so a NUL is refused here instead of failing the INSERT.
NO_NUL = r"^[^\x00]*$"
Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
AssetType = Literal["image", "video"]
MAX_BATCH_IDS = 100
_UUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# One to MAX_BATCH_IDS asset ids, comma-separated.
ID_LIST = rf"^{_UUID}(,{_UUID}){{0,{MAX_BATCH_IDS - 1}}}$"


class GenerationMetadata(Body):
    """What the canvas records about how a piece of media was generated (docs/api.md); all optional."""

    provider: Short | None = None
    variation_type: Short | None = None
    camera_angle: Short | None = None
    director_name: Short | None = None
    emotion: Short | None = None
    lighting_scenario: Short | None = None
    storyline_label: Short | None = None
    character_variation: Short | None = None
    weather: Short | None = None
    surface_map: Short | None = None
    model: Short | None = None
    prompt: Annotated[str, Field(max_length=4000, pattern=NO_NUL)] | None = None
    seed: StrictInt | Annotated[str, Field(max_length=64, pattern=NO_NUL)] | None = None


class UploadHints(Body):
    """Client-side guesses of the media's size; only range-checked, never stored (the worker measures)."""

    width: Annotated[int, Field(ge=1, le=10_000)] | None = None
    height: Annotated[int, Field(ge=1, le=10_000)] | None = None
    duration: Annotated[float, Field(gt=0, le=7200, allow_inf_nan=False)] | None = None


class UploadForm(UploadHints):
    """The multipart form of an upload; documentation only, since web/uploads.py streams and checks it."""

    file: bytes = Field(
        json_schema_extra={"format": "binary", "contentMediaType": "application/octet-stream"}
    )
    metadata: GenerationMetadata | None = None


class ImportIn(Body):
    source_url: Annotated[str, Field(min_length=1, max_length=2048)]
    asset_type: AssetType
    metadata: GenerationMetadata | None = None
    # The generation reservation this media was made under; the import settles one unit of it.
    reservation_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class ListQuery(Query):
    """A page of the caller's assets (`limit`, `cursor`), or those among `ids` in the order asked."""

    type: AssetType | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, Field(max_length=200)] | None = None
    ids: Annotated[str, Field(max_length=MAX_BATCH_IDS * 37, pattern=ID_LIST)] | None = None

    @model_validator(mode="after")
    def _ids_are_not_paged(self) -> ListQuery:
        if self.ids is not None and self.cursor is not None:
            raise ValueError("`ids` names the assets to read; it takes no `cursor`")
        return self

    def asset_ids(self) -> list[uuid.UUID]:
        """The ids asked for, in order, each once."""
        return list(dict.fromkeys(uuid.UUID(value) for value in (self.ids or "").split(",") if value))


class AssetUrls(Body):
    original: str | None
    thumbnail: str | None
    preview: str | None
    poster: str | None
    display: str | None = Field(
        description="What the canvas shows full size: the original if a browser can display its type, "
        "else a WebP/JPEG copy (HEIC, AVIF, TIFF), null until made."
    )


class AssetOut(Body):
    id: str
    type: AssetType
    status: Status
    error: str | None
    mime_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration: float | None
    codec: str | None
    frame_rate: float | None
    placeholder: str | None
    metadata: GenerationMetadata
    original_url: str | None
    created_at: int
    urls: AssetUrls


class AssetPage(Body):
    items: list[AssetOut]
    next_cursor: str | None
