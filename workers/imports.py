"""Imports: download a pending asset's source URL, vet it like an upload, store it, then charge the quota.

The API created the row (`pending`, size 0, `original_url`) and committed before sending this task. As
with uploads, the object is put before the transaction that reserves the bytes and points the row at it,
so a crash leaves at most an unowned object (swept later), never a charge for bytes that are not stored.
A row that is gone, no longer pending or already holds bytes is left alone, and each attempt stores under
a key of its own, so running twice, even at once, is safe.
"""

from __future__ import annotations

import secrets
import tempfile
import uuid
from dataclasses import dataclass
from typing import BinaryIO

import structlog
from celery import Task, shared_task
from sqlalchemy import func, select, update

from models import taskqueue
from models.assets import RENDITION_TASKS, extension_for, record_imported_original
from models.errors import QuotaExceeded, StorageError
from models.netguard import FetchRefused
from models.plans import get_plan
from models.storage.keys import original_key
from models.tables import Asset, User
from workers.context import WorkerContext, current
from workers.fetch import FetchPolicy, download
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES, check_dimensions, image_header_size, sniff
from workers.task_logging import follow_up_headers

log = structlog.get_logger(__name__)

STORAGE_RETRIES = 3


class ImportFailed(Exception):
    """A terminal refusal; `code` ends up on the asset row."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ImportJob:
    asset_id: uuid.UUID
    user_id: str
    asset_type: str
    source_url: str
    max_bytes: int
    # Storage room the user had when the attempt started: no download may go past it.
    room_bytes: int


def _claim(context: WorkerContext, asset_id: str) -> ImportJob | None:
    """Count this attempt on a pending import with no bytes yet; None when there is nothing to import."""
    # Counting attempts ends an import that kills its worker every time instead of running it forever:
    # here when the broker redelivers it at once (a lost worker's task is handed back), and in maintenance
    # when it stalls instead. Touching updated_at restarts its stall clock.
    budget = context.settings.max_processing_attempts + STORAGE_RETRIES
    with context.sessions.begin() as session:
        row = session.execute(
            update(Asset)
            .where(
                Asset.id == uuid.UUID(asset_id),
                Asset.status == "pending",
                Asset.size_bytes == 0,
                Asset.original_url.is_not(None),
            )
            .values(attempts=Asset.attempts + 1, updated_at=func.now())
            .returning(Asset.id, Asset.user_id, Asset.type, Asset.original_url, Asset.attempts)
        ).one_or_none()
        if row is None:
            return None
        if row.attempts > budget:
            session.execute(
                update(Asset).where(Asset.id == row.id).values(status="failed", error="too-many-attempts")
            )
            log.warning("import_out_of_attempts", asset_id=asset_id, attempts=row.attempts)
            return None
        user = session.execute(
            select(User.tier, User.storage_used_bytes).where(User.user_id == row.user_id)
        ).one()
        plan = get_plan(session, user.tier)
        room = max(0, plan.storage_quota_bytes - user.storage_used_bytes)
        return ImportJob(row.id, row.user_id, row.type, row.original_url, plan.max_upload_bytes, room)


def _inspect(spool: BinaryIO, size: int, job: ImportJob, limits: MediaLimits) -> str:
    """The sniffed MIME type, if the bytes are an accepted type of the announced kind within limits."""
    if size == 0:
        raise ImportFailed("empty")
    spool.seek(0)
    sniffed = sniff(spool.read(SNIFF_BYTES))
    if sniffed is None:
        raise ImportFailed("unsupported-format")
    if sniffed.kind != job.asset_type:
        raise ImportFailed("type-mismatch")
    if sniffed.kind == "image":
        try:
            check_dimensions(*image_header_size(spool, sniffed), limits)
        except MediaRejected as rejected:
            raise ImportFailed(rejected.code) from None
    spool.seek(0)
    return sniffed.mime_type


def _discard(context: WorkerContext, key: str) -> None:
    try:
        context.storage.delete(key)
    except StorageError:
        log.warning("orphan_object_left", storage_key=key, exc_info=True)


def _record(context: WorkerContext, job: ImportJob, key: str, mime_type: str, size: int) -> bool:
    """Charge and point the row at `key`; False when the row went away or moved on meanwhile."""
    try:
        with context.sessions.begin() as session:
            asset = session.get(Asset, job.asset_id, with_for_update=True)
            if asset is None or asset.status != "pending" or asset.size_bytes:
                _discard(context, key)
                return False
            record_imported_original(session, asset, storage_key=key, mime_type=mime_type, size_bytes=size)
            return True
    except QuotaExceeded:
        _discard(context, key)
        raise ImportFailed("quota-exceeded") from None
    except BaseException:
        _discard(context, key)
        raise


def _fail(context: WorkerContext, job: ImportJob, code: str) -> None:
    # Nothing is charged before _record commits, so a failure has no reservation to give back.
    with context.sessions.begin() as session:
        session.execute(
            update(Asset)
            .where(Asset.id == job.asset_id, Asset.status == "pending", Asset.size_bytes == 0)
            .values(status="failed", error=code)
        )
    log.info("import_failed", asset_id=str(job.asset_id), code=code)


def _client(context: WorkerContext):
    if context.celery is None:
        context.celery = taskqueue.make_client(context.settings)
    return context.celery


def run_import(context: WorkerContext, job: ImportJob) -> bool:
    """Download, vet, store and record one import; True when the asset now holds its original."""
    settings = context.settings
    policy = FetchPolicy(
        allow_http=settings.import_allow_http,
        allow_loopback=settings.import_allow_loopback,
        max_bytes=min(job.max_bytes, job.room_bytes),
        timeout_seconds=settings.import_timeout_seconds,
    )
    limits = MediaLimits(max_dimension=settings.max_dimension, max_pixels=settings.max_image_pixels)
    with tempfile.TemporaryFile() as spool:
        try:
            size = download(job.source_url, spool, policy).size
            mime_type = _inspect(spool, size, job, limits)
        except FetchRefused as refused:
            # Past the user's room the bytes could never be charged: stop there, not at the per-file limit.
            if refused.code == "too-large" and job.room_bytes < job.max_bytes:
                raise ImportFailed("quota-exceeded") from None
            raise ImportFailed(refused.code) from None
        # A key of this attempt's own: a duplicate delivery running at the same time must never overwrite,
        # nor discard when it loses, the object the winner recorded.
        version = secrets.token_hex(4)
        key = original_key(job.user_id, job.asset_id, extension_for(mime_type), version=version)
        try:
            context.storage.put(key, spool, content_type=mime_type)
        except StorageError:
            _discard(context, key)
            raise
        return _record(context, job, key, mime_type, size)


@shared_task(
    bind=True,
    name=taskqueue.IMPORT_REMOTE_ASSET,
    soft_time_limit=120,
    time_limit=150,
)
def import_remote(self: Task, asset_id: str) -> None:
    """Import the pending asset's `original_url`; refusals end it `failed` with a code."""
    context = current()
    job = _claim(context, asset_id)
    if job is None:
        return
    try:
        stored = run_import(context, job)
    except ImportFailed as failure:
        _fail(context, job, failure.code)
        return
    except StorageError as error:
        if self.request.retries >= STORAGE_RETRIES:
            _fail(context, job, "storage-unavailable")
            return
        raise self.retry(exc=error, countdown=2 ** (self.request.retries + 1)) from error
    if stored:
        # The request id that asked for the import goes on with it into the renditions.
        taskqueue.send(
            _client(context), RENDITION_TASKS[job.asset_type], asset_id, headers=follow_up_headers()
        )
