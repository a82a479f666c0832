"""The video task: probe, check against the limits and take a WebP poster frame (queue `videos`)."""

from __future__ import annotations

import os
import tempfile

from core import taskqueue
from models.asset_lifecycle import Claim
from workers.context import WorkerContext
from workers.media.limits import MediaLimits
from workers.media.video import make_poster, probe_video
from workers.policy import task
from workers.renditions import Renditions, RenditionTask, recorded_type, render_asset


@task(taskqueue.MAKE_VIDEO_RENDITIONS, soft_time_limit=240, time_limit=300, base=RenditionTask)
def render_video_asset(asset_id: str) -> str | None:
    """Measure a video asset, make its poster and mark it ready, or failed with the reason."""
    return render_asset(asset_id, video_renditions)


def video_renditions(context: WorkerContext, claim: Claim, limits: MediaLimits) -> Renditions:
    """ffprobe/ffmpeg need a path: the original goes to a per-attempt temp dir that is always removed."""
    sniffed = recorded_type(claim)
    with tempfile.TemporaryDirectory(prefix="iskra-video-") as directory:
        path = os.path.join(directory, "original")
        context.storage.download_to(claim.storage_key, path)
        info = probe_video(path, sniffed, limits)
        poster = make_poster(path, sniffed, info, limits)
    measurements = {
        "duration": info.duration,
        "width": info.width,
        "height": info.height,
        "codec": info.codec[:32],
        "frame_rate": info.frame_rate,
        "placeholder": poster.placeholder,
    }
    return Renditions({"poster": poster.webp}, measurements)
