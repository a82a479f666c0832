"""The caller's media: upload, import, list, read and delete assets."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from spectree import Response

from models import taskqueue
from models.assets import RENDITION_TASKS, create_import, delete_asset, get_owned_asset, list_assets
from models.errors import BadRequest
from models.netguard import check_literal_host, parse_target
from models.plans import get_plan
from models.tables import Asset
from models.users import ensure_user
from web.auth import current_identity
from web.db import db
from web.enqueue import enqueue
from web.openapi import api
from web.ratelimit import rate_limited
from web.schemas import dump, epoch_ms
from web.schemas.assets import AssetOut, AssetPage, AssetUrls, GenerationMetadata, ImportIn, ListQuery
from web.services import services
from web.uploads import inspect_upload, parse_fields, receive_upload, store_upload
from workers.media.limits import media_limits
from workers.media.sniff import NEEDS_DISPLAY_COPY

bp = Blueprint("assets", __name__, url_prefix="/assets")
WEBP = "image/webp"


def asset_out(asset: Asset) -> dict[str, Any]:
    """The asset's JSON body, with short-lived signed URLs for every object it has."""
    storage, ttl = services().storage, services().settings.signed_url_ttl_seconds

    def signed(key: str | None, content_type: str | None) -> str | None:
        return storage.url(key, expires_in=ttl, content_type=content_type) if key else None

    original = signed(asset.storage_key if asset.size_bytes else None, asset.mime_type)
    # A display copy is stored as WebP or (past WebP's size) JPEG: the stored type is served.
    display = signed(asset.display_key, None) or (
        original if asset.type == "image" and asset.mime_type not in NEEDS_DISPLAY_COPY else None
    )

    return dump(
        AssetOut(
            id=str(asset.id),
            type=asset.type,
            status=asset.status,
            error=asset.error,
            mime_type=asset.mime_type,
            size_bytes=asset.size_bytes,
            width=asset.width,
            height=asset.height,
            duration=asset.duration,
            codec=asset.codec,
            frame_rate=asset.frame_rate,
            placeholder=asset.placeholder,
            metadata=GenerationMetadata.model_validate(asset.generation),
            original_url=asset.original_url,
            created_at=epoch_ms(asset.created_at),
            urls=AssetUrls(
                # An import has no original until its task has stored one.
                original=original,
                thumbnail=signed(asset.thumbnail_key, WEBP),
                preview=signed(asset.preview_key, WEBP),
                poster=signed(asset.poster_key, WEBP),
                display=display,
            ),
        )
    )


def _refuse_bad_query(_req: Any, _resp: Any, error: Exception | None, *_: Any) -> None:
    if error is not None:
        errors = getattr(error, "errors", lambda **_: [])(include_url=False, include_context=False)
        raise BadRequest("The query parameters are not valid.", errors=errors)


# The `upload` rate-limit class (SPEC §5) wraps validation too, so it is counted before any byte
# of the body is read.
@bp.post("")
@rate_limited("upload")
@api.validate(resp=Response(HTTP_201=AssetOut), tags=["assets"])
def upload_asset():
    """Upload an image or video: multipart `file`, optional `metadata` JSON, width/height/duration hints.

    Accepted by their magic bytes: JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF, MP4, MOV, WebM, MPEG,
    AVI (anything else is a 415). HEIC, AVIF and TIFF get a browser-displayable `urls.display` copy.
    """
    identity = current_identity()
    with db().begin():
        plan = get_plan(db(), ensure_user(db(), identity.user_id, identity.email).tier)
    with receive_upload(plan.max_upload_bytes) as upload:
        generation = parse_fields(upload.form)
        sniffed = inspect_upload(upload, media_limits(services().settings))
        asset = store_upload(identity.user_id, upload, sniffed, generation)
    enqueue(RENDITION_TASKS[asset.type], str(asset.id))
    return asset_out(asset), 201, {"Location": f"/v1/assets/{asset.id}"}


@bp.post("/import")
@rate_limited("upload")
@api.validate(json=ImportIn, resp=Response(HTTP_202=AssetOut), tags=["assets"])
def import_asset():
    """Import generated media from a URL: the asset is created pending and a task downloads it."""
    identity, body, settings = current_identity(), request.context.json, services().settings
    target = parse_target(body.source_url, allow_http=settings.import_allow_http)
    check_literal_host(target, allow_loopback=settings.import_allow_loopback)
    generation = body.metadata.model_dump(exclude_none=True) if body.metadata else {}
    with db().begin():
        ensure_user(db(), identity.user_id, identity.email)
        asset = create_import(
            db(),
            user_id=identity.user_id,
            asset_type=body.asset_type,
            source_url=body.source_url,
            generation=generation,
        )
    enqueue(taskqueue.IMPORT_REMOTE_ASSET, str(asset.id))
    return asset_out(asset), 202, {"Location": f"/v1/assets/{asset.id}"}


@bp.get("")
@api.validate(query=ListQuery, resp=Response(HTTP_200=AssetPage), tags=["assets"], before=_refuse_bad_query)
def list_assets_view():
    """The caller's assets, newest first, one page at a time (`cursor` from the previous page)."""
    query: ListQuery = request.context.query
    with db().begin():
        page = list_assets(
            db(), current_identity().user_id, limit=query.limit, cursor=query.cursor, asset_type=query.type
        )
        items = [asset_out(asset) for asset in page.items]
    return {"items": items, "nextCursor": page.next_cursor}


@bp.get("/<asset_id>")
@api.validate(resp=Response(HTTP_200=AssetOut), tags=["assets"])
def get_asset(asset_id: str):
    """One asset: status, measurements, placeholder and signed URLs."""
    with db().begin():
        asset = get_owned_asset(db(), current_identity().user_id, asset_id)
    return asset_out(asset)


@bp.delete("/<asset_id>")
@api.validate(resp=Response("HTTP_204"), tags=["assets"])
def delete_asset_view(asset_id: str):
    """Delete an asset: its bytes are given back at once, its objects removed by maintenance."""
    with db().begin():
        delete_asset(db(), current_identity().user_id, asset_id)
    enqueue(taskqueue.PURGE_DELETED_OBJECTS)
    return "", 204
