"""The caller's media: upload, import, list, read and delete assets."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, request
from spectree import Response

from core import taskqueue
from core.netguard import check_literal_host, parse_target
from core.settings import media_limits
from models.asset_lifecycle import create_import, create_upload, next_task
from models.assets import Page, delete_asset, get_owned_asset, get_owned_assets, list_assets
from models.plans import get_plan
from models.presenters import present_asset
from models.quota import check_not_full, room_of
from models.reservations import settle
from models.storage.keys import extension_for, original_key
from models.storage.staging import put_then_record
from models.tables import Asset
from web.auth import current_identity, signed_in_user
from web.conditional import tagged_json
from web.db import db
from web.enqueue import enqueue
from web.idempotency import claim_idempotency, idempotent
from web.openapi import api, refuse_bad_query
from web.ratelimit import rate_limited
from web.schemas.assets import AssetOut, AssetPage, ImportIn, ListQuery
from web.services import services
from web.uploads import parse_fields, receive_upload, upload_digest, vetted

bp = Blueprint("assets", __name__, url_prefix="/assets")


def asset_out(asset: Asset) -> dict[str, Any]:
    """The asset's JSON body, with signed URLs for every object it has."""
    return present_asset(asset).signed(services().signed_url)


# The `upload` rate-limit class (docs/api.md) wraps validation too, so it is counted before any byte
# of the body is read.
@bp.post("")
@rate_limited("upload")
@idempotent
@api.validate(
    resp=Response("HTTP_400", "HTTP_413", "HTTP_415", "HTTP_507", HTTP_201=AssetOut), tags=["assets"]
)
def upload_asset():
    """Upload an image or video: multipart `file`, optional `metadata` JSON, width/height/duration hints.

    Accepted by their magic bytes: JPEG, PNG, GIF, WebP, BMP, TIFF, HEIC/HEIF, AVIF, MP4, MOV, WebM, MPEG,
    AVI (anything else is a 415). HEIC, AVIF and TIFF get a browser-displayable `urls.display` copy.
    """
    user_id, storage = current_identity().user_id, services().storage
    with db().begin():
        user = signed_in_user()
        plan = get_plan(db(), user.tier)
        room = room_of(user, plan)
    with receive_upload(plan.max_upload_bytes, storage.spool) as upload:
        claim_idempotency(lambda: upload_digest(upload))  # a retry is answered here, before storing
        generation = parse_fields(upload.form)
        sniffed = vetted(upload, media_limits(services().settings))
        room.check(upload.size)  # refuse early what clearly cannot fit (usage as read before the body)
        asset_id = uuid.uuid4()
        key = original_key(user_id, asset_id, extension_for(sniffed.mime_type))
        with put_then_record(storage, key, upload.file, content_type=sniffed.mime_type) as staged:
            with db().begin():
                asset = create_upload(
                    db(), asset_id=asset_id, user_id=user_id, asset_type=sniffed.kind, storage_key=key,
                    mime_type=sniffed.mime_type, size_bytes=upload.size, generation=generation,
                )  # fmt: skip
            staged.recorded()
    enqueue(next_task(asset.type, asset.size_bytes, asset.original_url), str(asset.id))
    return asset_out(asset), 201, {"Location": f"/v1/assets/{asset.id}"}


@bp.post("/import")
@rate_limited("upload")
@idempotent
@api.validate(
    json=ImportIn, resp=Response("HTTP_404", "HTTP_409", "HTTP_507", HTTP_202=AssetOut), tags=["assets"]
)
def import_asset():
    """Import generated media from a URL: the asset is created pending and a task downloads it."""
    body, settings = request.context.json, services().settings  # type: ignore[attr-defined]
    target = parse_target(body.source_url, allow_http=settings.import_allow_http)
    check_literal_host(target, allow_loopback=settings.import_allow_loopback)
    generation = body.metadata.model_dump(exclude_none=True) if body.metadata else {}
    with db().begin():
        user_id = signed_in_user().user_id
        # The size is unknown until the download: refuse here only a user with no room at all (any
        # import would fail), so no download is queued for them; the task charges the real size.
        check_not_full(db(), user_id)
        if body.reservation_id is not None:
            settle(db(), user_id, body.reservation_id, body.asset_type)
        asset = create_import(
            db(),
            user_id=user_id,
            asset_type=body.asset_type,
            source_url=body.source_url,
            generation=generation,
        )
    enqueue(next_task(asset.type, asset.size_bytes, asset.original_url), str(asset.id))
    return asset_out(asset), 202, {"Location": f"/v1/assets/{asset.id}"}


@bp.get("")
@api.validate(query=ListQuery, resp=Response(HTTP_200=AssetPage), tags=["assets"], before=refuse_bad_query)
def list_assets_view():
    """The caller's assets newest first, a page at a time (`cursor`); or with `ids`, those in that order."""
    query: ListQuery = request.context.query  # type: ignore[attr-defined]
    user_id = current_identity().user_id
    with db().begin():
        if query.ids is not None:
            page = Page(get_owned_assets(db(), user_id, query.asset_ids(), asset_type=query.type), None)
        else:
            page = list_assets(db(), user_id, limit=query.limit, cursor=query.cursor, asset_type=query.type)
        items = [asset_out(asset) for asset in page.items]
    return {"items": items, "nextCursor": page.next_cursor}


@bp.get("/<asset_id>")
@api.validate(resp=Response("HTTP_304", HTTP_200=AssetOut), tags=["assets"])
def get_asset(asset_id: str):
    """One asset: status, measurements, placeholder and signed URLs; 304 when If-None-Match has its ETag."""
    with db().begin():
        asset = get_owned_asset(db(), current_identity().user_id, asset_id)
    return tagged_json(asset_out(asset))


@bp.delete("/<asset_id>")
@api.validate(resp=Response("HTTP_204"), tags=["assets"])
def delete_asset_view(asset_id: str):
    """Delete an asset: its bytes are given back at once, its objects removed by maintenance."""
    with db().begin():
        delete_asset(db(), current_identity().user_id, asset_id)
    enqueue(taskqueue.PURGE_DELETED_OBJECTS)
    return "", 204
