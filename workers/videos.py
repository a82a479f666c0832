"""The video task: probe, check against the limits and take a WebP poster frame (queue `videos`)."""

from __future__ import annotations

import os
import tempfile

from core import taskqueue
from workers.context import WorkerContext
from workers.media.limits import MediaLimits
from workers.media.sniff import SNIFF_BYTES
from workers.media.video import make_poster, probe_video
from workers.renditions import Claim, Outcome, process, rendition_task, sniffed_as


@rendition_task(taskqueue.MAKE_VIDEO_RENDITIONS, soft_time_limit=240, time_limit=300)
def make_video_renditions(self, asset_id: str) -> str | None:
    """Measure a video asset, make its poster and mark it ready, or failed with the reason."""
    return process(asset_id, video_outcome, retries=self.request.retries)


def video_outcome(context: WorkerContext, claim: Claim, limits: MediaLimits) -> Outcome:
    """ffprobe/ffmpeg need a path: the original goes to a per-attempt temp dir that is always removed."""
    with tempfile.TemporaryDirectory(prefix="iskra-video-") as directory:
        path = os.path.join(directory, "original")
        context.storage.download_to(claim.storage_key, path)
        with open(path, "rb") as original:
            sniffed = sniffed_as(original.read(SNIFF_BYTES), "video")
        info = probe_video(path, sniffed, limits)
        poster = make_poster(path, sniffed, info, limits)
    columns = {
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
        "codec": info.codec[:32],
        "frame_rate": info.frame_rate,
        "placeholder": poster.placeholder,
    }
    return Outcome({"poster": poster.webp}, columns)
