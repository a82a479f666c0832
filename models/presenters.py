"""What clients see of assets, projects and usage, as JSON, for API answers and live events alike.

Bodies are built without signing: `Presented.urls` names the (key, content type) of each signed URL, and
whoever answers signs them (the API at request time, the event relay when it publishes), so a body can be
recorded inside the transaction that changed the row and signed once that transaction has committed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import BigInteger, ColumnElement, Text, cast, func, literal_column, null

from models.renditions import RENDITION_COLUMNS, rendition_key_of
from models.tables import Asset, Project
from workers.media.sniff import NEEDS_DISPLAY_COPY

# A storage key and the content type to serve it as (None: as stored) to a signed URL: Services.signed_url.
Sign = Callable[[str | None, str | None], str | None]
# The generation metadata an asset shows (web.schemas.assets.GenerationMetadata; a test ties the two).
GENERATION_FIELDS = (
    "provider",
    "variation_type",
    "camera_angle",
    "director_name",
    "emotion",
    "lighting_scenario",
    "storyline_label",
    "character_variation",
    "weather",
    "surface_map",
    "model",
    "prompt",
    "seed",
)


@dataclass(frozen=True)
class Presented:
    """A JSON body with its URLs unsigned: `urls` maps a dotted path in `body` to (key, content type)."""

    body: dict[str, Any]
    urls: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    def signed(self, sign: Sign) -> dict[str, Any]:
        """The body with every URL signed in its place."""
        body = copy.deepcopy(self.body) if self.urls else self.body
        for path, (key, content_type) in self.urls.items():
            *parents, leaf = path.split(".")
            target = body
            for name in parents:
                target = target[name]
            target[leaf] = sign(key, content_type)
        return body


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def present_asset(asset: Asset) -> Presented:
    """The asset as `GET /v1/assets/{id}` shows it."""
    generation = asset.generation or {}
    body = {
        "id": str(asset.id),
        "type": asset.type,
        "status": str(asset.status),
        "error": asset.error,
        "mimeType": asset.mime_type,
        "sizeBytes": asset.size_bytes,
        "width": asset.width,
        "height": asset.height,
        "duration": asset.duration,
        "codec": asset.codec,
        "frameRate": asset.frame_rate,
        "placeholder": asset.placeholder,
        "metadata": {to_camel(name): generation.get(name) for name in GENERATION_FIELDS},
        "originalUrl": asset.original_url,
        "createdAt": epoch_ms(asset.created_at),
        "urls": {"original": None, **dict.fromkeys(RENDITION_COLUMNS)},
    }
    # An import has no original until its task has stored one.
    original: tuple[str | None, str | None] = (
        asset.storage_key if asset.size_bytes else None,
        asset.mime_type,
    )
    # Renditions are served as the type they were stored with (WebP; a huge display copy is JPEG).
    urls = {"urls.original": original}
    urls.update({f"urls.{name}": (rendition_key_of(asset, name), None) for name in RENDITION_COLUMNS})
    if asset.type == "image" and asset.mime_type not in NEEDS_DISPLAY_COPY:
        urls["urls.display"] = original  # a browser shows the original itself
    return Presented(body, urls)


def project_body() -> ColumnElement[Any]:
    """A project's `project` event body as SQL over its row, `thumbnailUrl` left null for the signer.

    SQL, so that an autosave records its event in the RETURNING of its one UPDATE.
    """
    return func.json_build_object(
        literal_column("'id'"), cast(Project.id, Text),
        literal_column("'name'"), Project.name,
        literal_column("'revision'"), Project.revision,
        literal_column("'lastSavedAt'"), _epoch_ms(Project.last_saved_at),
        literal_column("'thumbnailUrl'"), null(),
    )  # fmt: skip


def _epoch_ms(column: Any) -> ColumnElement[int]:
    return cast(func.floor(func.extract("epoch", column) * 1000), BigInteger)


def project_urls() -> ColumnElement[Any]:
    """The (key, content type) to sign into the project body's `thumbnailUrl`, as SQL."""
    return func.json_build_object(
        literal_column("'thumbnailUrl'"), func.json_build_array(Project.thumbnail_key, null())
    )


def usage_body(report: Any, now: datetime | None = None) -> dict[str, Any]:
    """The body of `GET /v1/me/usage` for a models.usage.UsageReport."""
    storage = report.storage
    return {
        "storage": {
            "usedBytes": storage.used_bytes,
            "quotaBytes": storage.quota_bytes,
            "percentage": storage.percentage,
            "status": storage.status,
        },
        "generations": {
            counter.type: {
                "used": counter.used,
                "limit": counter.limit,
                "remaining": counter.remaining,
                "percentage": counter.percentage,
            }
            for counter in (report.images, report.videos)
        },
        "billingCycleStart": epoch_ms(report.cycle_start),
        "billingCycleEnd": epoch_ms(report.cycle_end),
        "daysUntilReset": report.days_until_reset(now),
    }
