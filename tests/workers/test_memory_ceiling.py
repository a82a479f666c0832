"""The task-process memory ceiling on a real worker: big images fit; what would not fails `too-large`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import taskqueue
from models.tables import Asset
from tests.processes import pool_children, running, settings_env, wait_until, worker_command
from tests.workers.media.hostile_media import good_jpeg
from tests.workers.rendition_support import add_asset, asset, committed_assets

pytestmark = pytest.mark.e2e
USER = "user_memory"
MIB = 1024 * 1024


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sixteen_bit_png() -> bytes:
    """10000 x 10000 16-bit grey: a few MB stored, 191 MiB decoded, ~1.1 GB the way it used to be made."""
    y, x = np.ogrid[0:10_000, 0:10_000]
    return _png(Image.fromarray(((x * 5 + y * 2) % 65_536).astype(np.uint16)))


@pytest.fixture(scope="module")
def large_inputs(sixteen_bit_png) -> dict[str, tuple[bytes, str]]:
    y, x = np.ogrid[0:7_000, 0:7_000]
    rgba = np.empty((7_000, 7_000, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = x % 256, y % 256, (x + y) % 256, (x // 9) % 256
    y, x = np.ogrid[0:10_000, 0:10_000]
    rgb = np.empty((10_000, 10_000, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = x % 256, y % 256, (x * y) % 256
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=85)
    return {
        "16-bit grey PNG, 100 MP": (sixteen_bit_png, "png"),
        "RGBA PNG, 49 MP": (_png(Image.fromarray(rgba, "RGBA")), "png"),
        "JPEG, 100 MP": (jpeg.getvalue(), "jpg"),
    }


@pytest.fixture
def committed(settings, engine):
    with committed_assets(settings, engine, USER) as made:
        yield made


def _finished(settings, sessions, asset_id: str) -> Asset:
    taskqueue.send(taskqueue.make_client(settings), taskqueue.MAKE_IMAGE_RENDITIONS, asset_id)
    wait_until(lambda: asset(sessions, asset_id).status in ("ready", "failed"), timeout=180, interval=0.1)
    return asset(sessions, asset_id)


def _peak_resident(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def test_an_image_worker_child_stays_under_the_ceiling_on_16_bit_rgba_and_100_mp_images(
    settings, committed, large_inputs, tmp_path
):
    sessions, storage, created = committed
    ceiling = settings.worker_memory_limit_mb * MIB
    with running(worker_command("images"), settings_env(settings), tmp_path / "worker.log") as worker:
        children = wait_until(lambda: pool_children(worker.pid))
        for label, (content, ext) in large_inputs.items():
            asset_id = add_asset(sessions, storage, content, ext=ext, user_id=USER)
            created.append(asset_id)

            row = _finished(settings, sessions, asset_id)

            assert (label, row.status, row.error) == (label, "ready", None)
            # A child past worker_max_memory_per_child (the ceiling) would be replaced after its task.
            assert (label, pool_children(worker.pid)) == (label, children)
            peaks = [_peak_resident(child) for child in children]
            assert max(peaks) < ceiling, (label, [peak // MIB for peak in peaks])


def test_an_image_that_needs_more_than_the_ceiling_fails_too_large_and_the_worker_goes_on(
    settings, committed, sixteen_bit_png, tmp_path
):
    sessions, storage, created = committed
    low = settings.model_copy(update={"worker_memory_limit_mb": 192})
    huge = add_asset(sessions, storage, sixteen_bit_png, ext="png", user_id=USER)
    good = add_asset(sessions, storage, good_jpeg(1200, 900), ext="jpg", user_id=USER)
    created += [huge, good]
    with running(worker_command("images"), settings_env(low), tmp_path / "worker.log") as worker:
        huge_row = _finished(low, sessions, huge)
        good_row = _finished(low, sessions, good)
        still_running = worker.poll() is None

    assert (huge_row.status, huge_row.error, huge_row.attempts) == ("failed", "too-large", 1)
    assert (good_row.status, good_row.error) == ("ready", None)
    assert good_row.thumbnail_key and storage.head(good_row.thumbnail_key) is not None
    assert still_running
