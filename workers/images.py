"""The image task: WebP thumbnail, preview and placeholder for an uploaded image (queue `images`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO, cast

from core import taskqueue
from models.asset_lifecycle import Claim
from models.errors import StorageError
from workers.context import WorkerContext
from workers.media.images import make_image_renditions
from workers.media.limits import MediaLimits
from workers.policy import task
from workers.renditions import Renditions, RenditionTask, recorded_type, render_asset

# Originals are at most the plan's upload cap (25 MiB); smaller ones never touch the disk.
SPOOL_BYTES = 8 * 1024 * 1024


@task(taskqueue.MAKE_IMAGE_RENDITIONS, soft_time_limit=60, time_limit=90, base=RenditionTask)
def render_image_asset(asset_id: str) -> str | None:
    """Make an image asset's renditions and mark it ready, or failed with the reason."""
    return render_asset(asset_id, image_renditions)


def image_renditions(context: WorkerContext, claim: Claim, limits: MediaLimits) -> Renditions:
    """Decode the original once, streamed from storage, into its renditions and measurements."""
    sniffed = recorded_type(claim)
    with context.storage.open(claim.storage_key) as stream, seekable(stream) as source:
        made = make_image_renditions(source, sniffed, limits)
    images = {"thumbnail": made.thumbnail}
    if made.preview is not None:
        images["preview"] = made.preview
    if made.display is not None:
        images["display"] = made.display
    return Renditions(images, {"width": made.width, "height": made.height, "placeholder": made.placeholder})


@contextmanager
def seekable(stream: BinaryIO) -> Iterator[BinaryIO]:
    """`stream` if decoders can seek in it; else (an S3 body) a spooled copy, in memory while small."""
    if stream.seekable():
        yield stream
        return
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as copy:
        try:
            shutil.copyfileobj(stream, copy)
        except OSError as error:
            raise StorageError(f"reading the original failed: {error}") from error
        copy.seek(0)
        yield cast(BinaryIO, copy)  # typeshed types a spooled file as IO[bytes], not BinaryIO
