"""Rendering an asset at the task edge: claim it, make its renditions outside a transaction, record them.

The transitions are models.asset_lifecycle's; this module holds the storage side. Renditions are stored
under fresh keys before the row points at them, and only the attempt whose record still finds the row
`processing` wins: a losing or crashed attempt's objects are never referenced and are deleted. A failed
asset keeps its row and its original (so the user sees why) and stays charged against the quota, because
its bytes are still stored; deleting the asset gives them back.
"""

from __future__ import annotations

import io
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from core.settings import media_limits
from models.asset_lifecycle import Claim, Status, claim_for_rendering, record_failure, record_renditions
from models.errors import ObjectMissing, StorageError
from models.storage.keys import RENDITIONS_PREFIX, rendition_key
from workers.context import WorkerContext, current
from workers.media.errors import MediaRejected
from workers.media.limits import MediaLimits
from workers.media.sniff import BY_MIME, SniffedType, sniff
from workers.policy import IskraTask, is_last_try

log = structlog.get_logger(__name__)


class RenditionTask(IskraTask):
    """A rendition task whose hard time limit fails its asset as `timeout` instead of leaving it stuck."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        # The hard limit kills the pool process mid-work; the worker's main process reports it here, and
        # the message is acknowledged, so nothing else would move the row on from `processing`.
        if not (isinstance(exc, TimeLimitExceeded) and args):
            return
        try:
            fail_timed_out(str(args[0]))
        except Exception:  # the database is down too: the stuck-asset job moves the row on later
            log.exception("timed out asset not marked failed", asset_id=str(args[0]))


@dataclass(frozen=True)
class Renditions:
    """What a successful attempt produced: WebP bytes by rendition name, and the columns it measured."""

    images: dict[str, bytes]
    measurements: dict[str, Any] = field(default_factory=dict)


MakeRenditions = Callable[[WorkerContext, Claim, MediaLimits], Renditions]


def render_asset(asset_id: str, make: MakeRenditions) -> str | None:
    """Run one attempt on the asset; the row's final status, or None when there was nothing to do.

    Transient storage errors propagate so the task retries them; on the last try the asset fails with
    `storage-unavailable` first (the error still propagates, so the task shows as failed in Flower).
    """
    context = current()
    with context.sessions.begin() as session:
        claim = claim_for_rendering(session, asset_id, context.settings.max_processing_attempts)
    if claim is None:
        return None
    try:
        return _store_and_record(context, claim, make(context, claim, media_limits(context.settings)))
    except MediaRejected as rejected:
        log.info("media rejected", asset_id=asset_id, code=rejected.code, detail=rejected.detail)
        return _fail(context, claim.asset_id, rejected.code)
    except SoftTimeLimitExceeded:
        return _fail(context, claim.asset_id, "timeout")
    except ObjectMissing:
        return _fail(context, claim.asset_id, "original-missing")
    except MemoryError:
        # The process's memory ceiling (workers.memory) stopped the work; what it held is freed by now.
        log.warning("media over the memory ceiling", asset_id=asset_id, code="too-large")
        return _fail(context, claim.asset_id, "too-large")
    except StorageError:
        if is_last_try():
            _fail(context, claim.asset_id, "storage-unavailable")
        raise
    except Exception:
        # A bug, not the file's fault: say so on the row rather than leave it `processing`, and re-raise.
        _fail(context, claim.asset_id, "internal-error")
        raise


def recorded_type(claim: Claim) -> SniffedType:
    """The type intake proved the original to be, as the row records it (decoders are forced to it)."""
    if not claim.size_bytes:
        raise MediaRejected("empty", "the original is empty")
    sniffed = BY_MIME.get(claim.mime_type)
    if sniffed is None or sniffed.kind != claim.type:
        raise MediaRejected("unsupported-format", f"{claim.mime_type} is not an accepted {claim.type} type")
    return sniffed


def fail_timed_out(asset_id: str) -> str | None:
    """Fail an asset whose attempt was killed at its hard time limit; its stored renditions are dropped."""
    try:
        claim_id = uuid.UUID(asset_id)
    except ValueError:
        return None
    log.warning("media timed out", asset_id=asset_id, code="timeout")
    return _fail(current(), claim_id, "timeout")


def _store_and_record(context: WorkerContext, claim: Claim, renditions: Renditions) -> str | None:
    """Store the renditions under fresh keys, then point the row at them if this attempt still owns it."""
    stored: dict[str, str] = {}
    won = False
    try:
        for name, data in renditions.images.items():
            key = _fresh_key(claim, name)
            context.storage.put(key, io.BytesIO(data), content_type=_content_type(data))
            stored[name] = key
        with context.sessions.begin() as session:
            recorded = record_renditions(session, claim.asset_id, stored, renditions.measurements)
        won = recorded  # only once committed: a failed commit must still delete what it stored
    finally:
        if not won:
            _delete_quietly(context, list(stored.values()))
    if not won:
        return None
    if claim.attempt > 1:
        # Only an earlier attempt can have left renditions behind. (One that died before an operator's
        # reset restarted the count leaves them to maintenance's abandoned-object sweep.)
        _sweep_orphans(context, claim.asset_id, keep=set(stored.values()))
    return Status.READY


def _content_type(rendition: bytes) -> str:
    # WebP, except a display copy too large for WebP, which is JPEG.
    sniffed = sniff(rendition[:16])
    return sniffed.mime_type if sniffed is not None else "image/webp"


def _fail(context: WorkerContext, asset_id: uuid.UUID, code: str) -> str | None:
    """Record `code` if this attempt still owns the row; drop renditions of earlier dead attempts."""
    with context.sessions.begin() as session:
        recorded = record_failure(session, asset_id, code)
    if recorded:
        _sweep_orphans(context, asset_id, keep=set())
    return Status.FAILED if recorded else None


def _fresh_key(claim: Claim, name: str) -> str:
    """A key no earlier attempt used, so a re-run never overwrites an object a row references."""
    return rendition_key(claim.asset_id, f"{name}-{claim.attempt}-{secrets.token_hex(4)}")


def _sweep_orphans(context: WorkerContext, asset_id: uuid.UUID, keep: set[str]) -> None:
    """Delete this asset's renditions that the finished row does not reference (left by dead attempts).

    An attempt still running elsewhere cannot lose anything it needs: it can no longer win the row.
    """
    try:
        orphans = [
            info.key
            for info in context.storage.iter_objects(f"{RENDITIONS_PREFIX}{asset_id}/")
            if info.key not in keep
        ]
    except StorageError as error:
        # Garbage, not state: the row is already final, so a retry could not redo this sweep.
        log.warning("rendition sweep failed", asset_id=str(asset_id), error=str(error))
        return
    _delete_quietly(context, orphans)


def _delete_quietly(context: WorkerContext, keys: list[str]) -> None:
    for key in keys:
        try:
            context.storage.delete(key)
        except StorageError as error:
            log.warning("rendition delete failed", key=key, error=str(error))
