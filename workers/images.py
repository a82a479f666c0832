"""The image task: thumbnail, preview, placeholder and display copy for an uploaded image (queue `images`)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from models import taskqueue
from models.errors import StorageError
from workers.context import WorkerContext
from workers.media.images import make_image_renditions as render
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES
from workers.renditions import Claim, Outcome, process, rendition_task, sniffed_as

# Originals are at most the plan's upload cap (25 MiB); smaller ones never touch the disk.
SPOOL_BYTES = 8 * 1024 * 1024


@rendition_task(taskqueue.MAKE_IMAGE_RENDITIONS, soft_time_limit=60, time_limit=90)
def make_image_renditions(self, asset_id: str) -> str | None:
    """Make an image asset's renditions and mark it ready, or failed with the reason."""
    return process(asset_id, image_outcome, retries=self.request.retries)


def image_outcome(context: WorkerContext, claim: Claim, limits: MediaLimits) -> Outcome:
    """Decode the original once, streamed from storage, into its renditions and measurements."""
    with context.storage.open(claim.storage_key) as stream, seekable(stream) as source:
        sniffed = sniffed_as(source.read(SNIFF_BYTES), "image")
        source.seek(0)
        made = render(source, sniffed, limits)
    renditions = {"thumbnail": made.thumbnail}
    if made.preview is not None:
        renditions["preview"] = made.preview
    if made.display is not None:
        renditions["display"] = made.display
    return Outcome(renditions, {"width": made.width, "height": made.height, "placeholder": made.placeholder})


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
        yield copy
