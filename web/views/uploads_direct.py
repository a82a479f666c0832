"""Direct uploads (SPEC §12): the Companion S3 multipart routes `@uppy/aws-s3` calls, under two endpoints.

`/v1/uploads` takes a Bearer token (Uppy 5's `endpoint` + `headers`); `/v1/uploads/t/<ticket>` carries an
upload session's ticket in its path (Uppy 6's `companionEndpoint`, which sends no headers). The bytes go
from the browser to storage; completion checks the stored object as a form upload is checked.
"""

from __future__ import annotations

from flask import Blueprint
from spectree import Response

from core.settings import media_limits
from models.asset_lifecycle import create_upload, next_task
from models.assets import get_owned_assets
from models.direct_uploads import OpenUpload, direct_upload_key
from models.errors import InvalidMedia, NotFound, PayloadTooLarge, UploadCompleting
from models.plans import get_plan
from models.quota import check_room
from models.storage.multipart import ranged_reader
from models.storage.staging import record_or_discard
from web.auth import current_identity, signed_in_user
from web.db import db
from web.direct_uploads import (
    api_url,
    authenticate_ticket,
    declared_type,
    direct_uploads,
    json_object,
    multipart_refusals,
    parse_parts,
    parse_uppy_metadata,
    part_number,
    upload_key,
    with_message,
)
from web.enqueue import enqueue
from web.idempotency import idempotent
from web.openapi import api
from web.ratelimit import rate_limited
from web.schemas.uploads import MultipartCreatedOut, PartUrlOut, UploadSessionOut
from web.services import services
from web.uploads import vetted_stream
from web.views.assets import asset_out

PART_URL_SECONDS = 3600
TAGS = ["direct uploads"]
# What every Companion route may answer under either endpoint: a bad query or body, an unknown ticket (its
# address then counts, and may be 429), a dependency down.
REFUSALS = ("HTTP_400", "HTTP_401", "HTTP_429", "HTTP_503")

bp = Blueprint("uploads", __name__, url_prefix="/uploads")
ticket_bp = Blueprint("uploads_ticket", __name__, url_prefix="/v1/uploads/t/<ticket>")
ticket_bp.url_value_preprocessor(lambda _endpoint, values: authenticate_ticket(values))
for blueprint in (bp, ticket_bp):
    blueprint.after_request(with_message)


@bp.post("/sessions")
@api.validate(resp=Response(HTTP_201=UploadSessionOut), tags=["direct uploads"])
def open_session():
    """An upload session: a `companionEndpoint` that stands for the caller for one hour."""
    ticket, expires_at = direct_uploads().open_session(current_identity().user_id)
    return {"companionEndpoint": api_url(f"/v1/uploads/t/{ticket}"), "expiresAt": expires_at}, 201


@rate_limited("upload")
@api.validate(
    resp=Response(*REFUSALS, "HTTP_413", "HTTP_415", "HTTP_422", "HTTP_507", HTTP_200=MultipartCreatedOut),
    tags=TAGS,
)
def create_multipart():
    """Start a multipart upload; refused before anything is stored when it cannot be accepted."""
    body = json_object()
    content_type = declared_type(body)
    generation, size = parse_uppy_metadata(body.get("metadata"))
    user_id = current_identity().user_id
    with db().begin():
        plan = get_plan(db(), signed_in_user().tier)
        if size is not None and size > plan.max_upload_bytes:
            raise PayloadTooLarge(f"The file exceeds the plan's {plan.max_upload_bytes} bytes per file.")
        check_room(db(), user_id, size or 0)
    key = direct_upload_key(user_id, content_type)
    stored_type = content_type or "application/octet-stream"
    upload_id = services().storage.create_multipart(key, content_type=stored_type)
    direct_uploads().remember(
        OpenUpload(user_id, key, upload_id, content_type, generation, plan.max_upload_bytes)
    )
    return {"key": key, "uploadId": upload_id}


@api.validate(resp=Response(*REFUSALS, "HTTP_404", HTTP_200=PartUrlOut), tags=TAGS)
def sign_part(upload_id: str, number: str):
    """Where to PUT one part: `{url, expires}` (no Content-Type is signed)."""
    upload = direct_uploads().owned(current_identity().user_id, upload_id, upload_key())
    url = services().storage.part_url(
        upload.key, upload_id, part_number(number), expires_in=PART_URL_SECONDS, max_bytes=upload.max_bytes
    )
    return {"url": api_url(url) if url.startswith("/") else url, "expires": PART_URL_SECONDS}


@api.validate(resp=Response("HTTP_200", *REFUSALS, "HTTP_404"), tags=TAGS)
def list_parts(upload_id: str):
    """The parts uploaded so far, as a bare array (what a resumed upload skips)."""
    upload = direct_uploads().owned(current_identity().user_id, upload_id, upload_key())
    with multipart_refusals():
        parts = services().storage.list_parts(upload.key, upload_id)
    return [{"PartNumber": p.number, "Size": p.size, "ETag": p.etag} for p in parts]


@idempotent
@api.validate(
    resp=Response(
        "HTTP_200", *REFUSALS, "HTTP_404", "HTTP_409", "HTTP_413", "HTTP_415", "HTTP_422", "HTTP_507"
    ),
    tags=TAGS,
)
def complete_multipart(upload_id: str):
    """Join the parts, check the object as any upload is checked, charge it and create the asset."""
    user_id, storage = current_identity().user_id, services().storage
    upload = direct_uploads().owned(user_id, upload_id, upload_key())
    parts = parse_parts(json_object())
    with db().begin():
        done = next(iter(get_owned_assets(db(), user_id, [upload.asset_id])), None)
        plan = get_plan(db(), signed_in_user().tier)
    if done is not None:
        return completed(done)  # completing twice gives the same asset
    try:
        with multipart_refusals():
            info = storage.complete_multipart(upload.key, upload_id, parts)
    except NotFound:
        # The upload is gone but its object is there: a request beside this one completed it just now.
        if storage.head(upload.key) is not None:
            raise UploadCompleting("Another request is completing this upload; retry shortly.") from None
        raise
    with record_or_discard(storage, info) as staged:
        if info.size > plan.max_upload_bytes:
            raise PayloadTooLarge(f"The file exceeds the plan's {plan.max_upload_bytes} bytes per file.")
        if info.size == 0:
            raise InvalidMedia("the file is empty", code="empty")
        with ranged_reader(storage, upload.key, info.size) as stream:
            sniffed = vetted_stream(stream, media_limits(services().settings))
        with db().begin():
            asset = create_upload(
                db(), asset_id=upload.asset_id, user_id=user_id, asset_type=sniffed.kind,
                storage_key=upload.key, mime_type=sniffed.mime_type, size_bytes=info.size,
                generation=upload.generation,
            )  # fmt: skip
        staged.recorded()
    enqueue(next_task(asset.type, asset.size_bytes, asset.original_url), str(asset.id))
    return completed(asset)


def completed(asset):
    location = api_url(f"/v1/assets/{asset.id}")
    body = {"location": location, "key": asset.storage_key, "asset": asset_out(asset)}
    return body, 200, {"Location": location}


@api.validate(resp=Response("HTTP_200", *REFUSALS, "HTTP_404"), tags=TAGS)
def abort_multipart(upload_id: str):
    """Abort the upload: its parts are gone. Answers `{}` (Uppy reads a JSON body)."""
    upload = direct_uploads().owned(current_identity().user_id, upload_id, upload_key())
    services().storage.abort_multipart(upload.key, upload_id)
    direct_uploads().forget(upload_id)
    return {}


@api.validate(resp=Response(*REFUSALS, "HTTP_422"), tags=TAGS)
def single_put_params():
    """Uppy's route for files it does not send in parts (empty files): refused, every upload is multipart."""
    raise InvalidMedia("the file is empty; non-empty files are uploaded in parts", code="empty")


ROUTES = (
    ("/s3/multipart", "POST", create_multipart),
    ("/s3/multipart/<upload_id>/<number>", "GET", sign_part),
    ("/s3/multipart/<upload_id>", "GET", list_parts),
    ("/s3/multipart/<upload_id>/complete", "POST", complete_multipart),
    ("/s3/multipart/<upload_id>", "DELETE", abort_multipart),
    ("/s3/params", "GET", single_put_params),
)
for blueprint in (bp, ticket_bp):
    for rule, method, view in ROUTES:
        blueprint.add_url_rule(rule, f"{view.__name__}_{method.lower()}", view, methods=[method])
