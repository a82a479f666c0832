"""Autosaving can't delay uploads: an image's renditions are made while hundreds of renders wait."""

from __future__ import annotations

import io
import random
import uuid

import pytest
from PIL import Image
from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from core import taskqueue
from models.storage import make_storage
from models.storage.keys import rendition_key
from models.tables import Asset, Project
from models.users import ensure_user
from tests.processes import running, settings_env, wait_until, worker_command
from tests.workers.rendition_support import add_asset, asset, remove_committed

pytestmark = pytest.mark.e2e
USER = "user_render_flood"
RENDERS = 300
ELEMENTS = 1000


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((1200, 900)).convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _heavy_canvas(asset_id: str, rng: random.Random) -> dict:
    """A full canvas of large, rotated, overlapping pictures: the most a render can be asked to draw."""
    elements = [
        {"id": f"e{n}", "type": "image", "assetId": asset_id, "zIndex": n, "width": 400, "height": 300,
         "transform": {"x": rng.uniform(0, 600), "y": rng.uniform(0, 600), "scale": rng.uniform(0.5, 2),
                       "rotation": rng.uniform(0, 360)}}
        for n in range(ELEMENTS)
    ]  # fmt: skip
    return {"lastModified": 0, "backgroundColor": "#222", "elements": elements}


@pytest.fixture
def flood(settings, engine):
    """RENDERS committed projects of heavy canvases, all drawing one ready asset's thumbnail."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    storage = make_storage(settings)
    shown = uuid.uuid4()
    thumbnail = rendition_key(shown, "thumbnail")
    picture = io.BytesIO()
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(picture, "WEBP")
    storage.put(thumbnail, io.BytesIO(picture.getvalue()), content_type="image/webp")
    rng = random.Random(12)
    with sessions.begin() as session:
        ensure_user(session, USER)
        session.add(Asset(id=shown, user_id=USER, type="image", storage_key=f"originals/{shown}.jpg",
                          mime_type="image/jpeg", size_bytes=1, status="ready",
                          thumbnail_key=thumbnail))  # fmt: skip
    with sessions.begin() as session:
        project_ids = session.scalars(
            insert(Project).returning(Project.id),
            [{"user_id": USER, "name": f"Board {n}", "revision": 1,
              "canvas_state": _heavy_canvas(str(shown), rng)} for n in range(RENDERS)],
        ).all()  # fmt: skip
    created = [str(shown)]
    yield sessions, storage, [str(pid) for pid in project_ids], created
    for project_id in project_ids:
        for info in storage.iter_objects(f"projects/{project_id}/"):
            storage.delete(info.key)
    storage.delete(thumbnail)
    remove_committed(engine, storage, created, USER)  # its projects go with the user


def _rendered(sessions, project_ids: list[str]) -> int:
    with sessions() as session:
        rows = session.query(Project.thumbnail_revision).filter(Project.id.in_(project_ids)).all()
    return sum(1 for (revision,) in rows if revision == 1)


def _waiting_renders(redis_client, settings) -> int:
    depths = taskqueue.queue_depths(redis_client, settings.redis_key_prefix)
    return depths[taskqueue.queue_for(taskqueue.RENDER_PROJECT_THUMBNAIL)]


def test_an_uploads_thumbnail_is_ready_while_hundreds_of_project_renders_are_still_queued(
    settings, redis_client, flood, tmp_path
):
    sessions, storage, project_ids, created = flood
    client = taskqueue.make_client(settings)
    for project_id in project_ids:
        taskqueue.send(client, taskqueue.RENDER_PROJECT_THUMBNAIL, project_id)
    assert _waiting_renders(redis_client, settings) >= RENDERS
    env = settings_env(settings)

    with (
        running(worker_command("renders"), env, tmp_path / "renders.log"),
        running(worker_command("images"), env, tmp_path / "images.log"),
    ):
        # The render worker is busy with the flood before the upload arrives.
        wait_until(lambda: _rendered(sessions, project_ids) >= 1, timeout=120)
        upload = add_asset(sessions, storage, _photo(), ext="jpg", user_id=USER)
        created.append(upload)
        taskqueue.send(client, taskqueue.MAKE_IMAGE_RENDITIONS, upload)

        wait_until(lambda: asset(sessions, upload).status in ("ready", "failed"), timeout=120)
        waiting = _waiting_renders(redis_client, settings)
        rendered = _rendered(sessions, project_ids)

    row = asset(sessions, upload)
    assert (row.status, row.error) == ("ready", None)
    assert row.thumbnail_key and storage.head(row.thumbnail_key) is not None
    # Most of the flood was still waiting when the upload's thumbnail was ready, not drawn before it.
    assert waiting >= RENDERS * 2 // 3, (waiting, rendered)
    assert rendered <= RENDERS // 3, (waiting, rendered)
