"""Imports: download a pending asset's source URL, vet it as an upload is vetted, store it, then charge it.

The API created the row (`pending`, size 0, `original_url`) and committed before sending this task. As
with uploads the object is put before the transaction that charges it and points the row at it
(models.storage.staging). A row that is gone, no longer pending or already holds bytes is left alone,
and each attempt stores under a key of its own, so running twice, even at once, is safe.
"""

from __future__ import annotations

import secrets

import structlog

from core import taskqueue
from core.netguard import FetchRefused
from core.settings import media_limits
from models.asset_lifecycle import ImportClaim, claim_import, fail_import, next_task, record_import
from models.errors import QuotaExceeded, StorageError
from models.storage.keys import extension_for, original_key
from models.storage.staging import put_then_record
from workers.context import WorkerContext, current
from workers.fetch import FetchPolicy, download
from workers.media.errors import MediaRejected
from workers.media.vet import vet
from workers.policy import is_last_try, task
from workers.task_logging import follow_up_headers

log = structlog.get_logger(__name__)


class ImportFailed(Exception):
    """A terminal refusal; `code` ends up on the asset row."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@task(taskqueue.IMPORT_REMOTE_ASSET, soft_time_limit=120, time_limit=150)
def import_remote(asset_id: str) -> None:
    """Import the pending asset's `original_url`; refusals end it `failed` with a code."""
    context = current()
    with context.sessions.begin() as session:
        job = claim_import(session, asset_id, context.settings.max_processing_attempts)
    if job is None:
        return
    try:
        size = run_import(context, job)
    except ImportFailed as failure:
        _fail(context, job, failure.code)
        return
    except StorageError:
        if is_last_try():
            _fail(context, job, "storage-unavailable")
        raise
    if size is not None:
        # The request id that asked for the import goes on with it into the renditions.
        next_name = next_task(job.type, size, job.source_url)
        taskqueue.send(context.celery, next_name, asset_id, headers=follow_up_headers())


def run_import(context: WorkerContext, job: ImportClaim) -> int | None:
    """Download, vet, store and record one import; the bytes now charged, or None when the row moved on."""
    settings = context.settings
    policy = FetchPolicy(
        allow_http=settings.import_allow_http,
        allow_loopback=settings.import_allow_loopback,
        max_bytes=min(job.max_bytes, job.room_bytes),
        timeout_seconds=settings.import_timeout_seconds,
    )
    with context.storage.spool() as spool:
        try:
            size = download(job.source_url, spool, policy).size
            sniffed = vet(spool, media_limits(settings), kind=job.type)
        except (FetchRefused, MediaRejected) as refused:
            # Past the user's room the bytes could never be charged: that, not the file's size, refused it.
            if refused.code == "too-large" and job.room_bytes < job.max_bytes:
                raise ImportFailed("quota-exceeded") from None
            raise ImportFailed(refused.code) from None
        # A key of this attempt's own: a duplicate delivery running at the same time must never overwrite,
        # nor discard when it loses, the object the winner recorded.
        extension, version = extension_for(sniffed.mime_type), secrets.token_hex(4)
        key = original_key(job.user_id, job.asset_id, extension, version=version)
        with put_then_record(context.storage, key, spool, content_type=sniffed.mime_type) as staged:
            try:
                with context.sessions.begin() as session:
                    recorded = record_import(
                        session, job.asset_id, storage_key=key, mime_type=sniffed.mime_type, size=size
                    )
            except QuotaExceeded:
                raise ImportFailed("quota-exceeded") from None
            if recorded:
                staged.recorded()
    return size if recorded else None


def _fail(context: WorkerContext, job: ImportClaim, code: str) -> None:
    with context.sessions.begin() as session:
        fail_import(session, job.asset_id, code)
    log.info("import_failed", asset_id=str(job.asset_id), code=code)
