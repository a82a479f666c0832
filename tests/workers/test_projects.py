"""The project-thumbnail task: renders the latest canvas, records it, never records a stale render."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter

import pytest
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.taskqueue import LEGACY_RENDER_PROJECT_THUMBNAIL, RENDER_PROJECT_THUMBNAIL
from models.renditions import rendition_columns
from models.storage import make_storage
from models.storage.keys import project_thumbnail_key, rendition_key
from models.tables import Asset, PendingDeletion, Project
from models.thumbnail_schedule import render_delay
from models.users import ensure_user
from tests.processes import running, settings_env, wait_until, worker_command
from tests.queues import take
from workers import projects as task_module
from workers.media.canvas_render import PLACEHOLDER_RGBA
from workers.projects import forward_legacy_render, render_project_thumbnail

RED, GREEN = (255, 0, 0), (0, 255, 0)


def webp(colour, size=(100, 100)) -> bytes:
    output = io.BytesIO()
    Image.new("RGB", size, colour).save(output, "WEBP", lossless=True)
    return output.getvalue()


def stored_asset(session, storage, user_id, kind, colour, size=(100, 100)) -> str:
    asset_id = uuid.uuid4()
    key = rendition_key(asset_id, "poster" if kind == "video" else "thumbnail")
    storage.put(key, io.BytesIO(webp(colour, size)), content_type="image/webp")
    ensure_user(session, user_id)
    # As the rendition task records them: a video's poster is its thumbnail too.
    renditions = rendition_columns({"poster" if kind == "video" else "thumbnail": key})
    session.add(Asset(id=asset_id, user_id=user_id, type=kind, storage_key=f"originals/u/{asset_id}.bin",
                      mime_type="image/webp", size_bytes=1, status="ready", **renditions))  # fmt: skip
    session.flush()
    return str(asset_id)


def element(element_id, x, asset_id=None, kind="image", **extra) -> dict:
    found = {"id": element_id, "type": kind, "zIndex": 0, "width": 100, "height": 100,
             "transform": {"x": x, "y": 0, "scale": 1, "rotation": 0}, **extra}  # fmt: skip
    return found | ({"assetId": asset_id} if asset_id else {})


def add_project(session, elements, revision=1, user_id="user_canvas", **columns) -> str:
    ensure_user(session, user_id)
    project = Project(user_id=user_id, name="Board", revision=revision,
                      canvas_state={"lastModified": 0, "elements": elements, "backgroundColor": "#000"},
                      **columns)  # fmt: skip
    session.add(project)
    session.commit()
    return str(project.id)


def project_row(session, project_id) -> Project:
    session.expire_all()
    return session.get(Project, uuid.UUID(project_id))


def thumbnail(storage, key) -> Image.Image:
    with storage.open(key) as stream:
        picture = Image.open(io.BytesIO(stream.read()))
        assert picture.format == "WEBP"
        return picture.convert("RGB")


def near(actual, expected) -> bool:
    return max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= 40


def test_the_canvas_is_drawn_from_image_thumbnails_and_video_posters(worker_context, session):
    storage = worker_context.storage
    image = stored_asset(session, storage, "user_canvas", "image", RED)
    video = stored_asset(session, storage, "user_canvas", "video", GREEN)
    project_id = add_project(session, [element("a", 0, image), element("b", 100, video, "video")], revision=3)

    render_project_thumbnail(project_id)

    row = project_row(session, project_id)
    assert (row.thumbnail_key, row.thumbnail_revision) == (project_thumbnail_key(project_id, 3), 3)
    picture = thumbnail(storage, row.thumbnail_key)
    assert picture.size == (400, 200)
    assert near(picture.getpixel((100, 100)), RED)
    assert near(picture.getpixel((300, 100)), GREEN)


def test_missing_renditions_and_someone_elses_assets_draw_as_placeholders(worker_context, session):
    storage = worker_context.storage
    theirs = stored_asset(session, storage, "user_someone_else", "image", RED)
    pending = uuid.uuid4()
    project_id = add_project(session, [element("a", 0, theirs), element("b", 100, str(pending))])

    render_project_thumbnail(project_id)

    picture = thumbnail(storage, project_row(session, project_id).thumbnail_key)
    assert near(picture.getpixel((100, 100)), PLACEHOLDER_RGBA[:3])
    assert near(picture.getpixel((300, 100)), PLACEHOLDER_RGBA[:3])


class CountingOpens:
    """The test's storage, counting how often each key is opened."""

    def __init__(self, storage) -> None:
        self.storage, self.opened = storage, Counter()

    def open(self, key):
        self.opened[key] += 1
        return self.storage.open(key)

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_a_thousand_elements_showing_three_assets_open_and_decode_each_thumbnail_once(
    worker_context, session
):
    storage = worker_context.storage
    assets = [stored_asset(session, storage, "user_canvas", "image", colour) for colour in (RED, GREEN, RED)]
    elements = [element(f"e{n}", n * 7, assets[n % 3], transform={"x": n * 7, "y": n % 13, "scale": 1,
                "rotation": n % 360}) for n in range(1000)]  # fmt: skip
    project_id = add_project(session, elements, revision=4)
    worker_context.storage = CountingOpens(storage)

    render_project_thumbnail(project_id)

    assert project_row(session, project_id).thumbnail_revision == 4
    assert sorted(worker_context.storage.opened.values()) == [1, 1, 1]


def test_a_stored_thumbnail_far_larger_than_400_px_is_drawn_as_a_placeholder_not_decoded(
    worker_context, session
):
    huge = stored_asset(session, worker_context.storage, "user_canvas", "image", RED, size=(1200, 1200))
    project_id = add_project(session, [element("a", 0, huge)], revision=2)

    render_project_thumbnail(project_id)

    picture = thumbnail(worker_context.storage, project_row(session, project_id).thumbnail_key)
    assert near(picture.getpixel((200, 200)), PLACEHOLDER_RGBA[:3])


def test_a_canvas_whose_only_element_is_too_small_to_see_still_gets_its_thumbnail(worker_context, session):
    image = stored_asset(session, worker_context.storage, "user_canvas", "image", RED)
    project_id = add_project(session, [element("a", 0, image, width=5e-324, height=5e-324)], revision=2)

    render_project_thumbnail(project_id)

    row = project_row(session, project_id)
    assert (row.thumbnail_key, row.thumbnail_revision) == (project_thumbnail_key(project_id, 2), 2)
    picture = thumbnail(worker_context.storage, row.thumbnail_key)
    assert picture.size == (400, 300)  # the empty-canvas tile: nothing visible to draw
    assert near(picture.getpixel((200, 150)), (0, 0, 0))


def test_a_thumbnail_already_of_the_current_revision_is_not_rendered_again(worker_context, session):
    project_id = add_project(session, [element("a", 0)], revision=4, thumbnail_revision=4)

    render_project_thumbnail(project_id)

    assert project_row(session, project_id).thumbnail_key is None
    assert list(worker_context.storage.iter_objects(f"projects/{project_id}/")) == []


def test_a_starting_render_releases_the_schedules_hold_before_it_reads_the_canvas(
    worker_context, session, settings, redis_client
):
    project_id = add_project(session, [element("a", 0)], revision=4, thumbnail_revision=4)
    pid = uuid.UUID(project_id)
    schedule = ("user_canvas", pid, 5.0, 2.0)
    assert render_delay(redis_client, settings.redis_key_prefix, *schedule) == 5.0
    assert render_delay(redis_client, settings.redis_key_prefix, *schedule) is None  # held

    render_project_thumbnail(project_id, "user_canvas")

    assert render_delay(redis_client, settings.redis_key_prefix, *schedule) is not None  # saves schedule


def test_a_newer_render_replaces_the_old_thumbnail_and_outboxes_its_object(worker_context, session):
    old_key = "projects/old/thumbnail-1.webp"
    project_id = add_project(
        session, [element("a", 0)], revision=2, thumbnail_key=old_key, thumbnail_revision=1
    )

    render_project_thumbnail(project_id)

    assert project_row(session, project_id).thumbnail_key == project_thumbnail_key(project_id, 2)
    assert old_key in session.scalars(select(PendingDeletion.storage_key)).all()


def test_a_save_during_the_render_leaves_the_row_alone_and_removes_the_stale_object(
    worker_context, session, monkeypatch
):
    project_id = add_project(session, [element("a", 0)], revision=1)
    real_render = task_module.render

    def render_while_someone_saves(*args, **kwargs):
        with worker_context.sessions.begin() as other:
            other.execute(update(Project).where(Project.id == uuid.UUID(project_id)).values(revision=2))
        return real_render(*args, **kwargs)

    monkeypatch.setattr(task_module, "render", render_while_someone_saves)

    render_project_thumbnail(project_id)

    row = project_row(session, project_id)
    assert (row.thumbnail_key, row.thumbnail_revision) == (None, None)
    assert list(worker_context.storage.iter_objects(f"projects/{project_id}/")) == []


def test_a_second_delivery_of_the_same_render_keeps_the_thumbnail(worker_context, session):
    project_id = add_project(session, [element("a", 0)], revision=1)
    render_project_thumbnail(project_id)
    session.execute(
        update(Project).where(Project.id == uuid.UUID(project_id)).values(thumbnail_revision=None)
    )
    session.commit()

    render_project_thumbnail(project_id)

    row = project_row(session, project_id)
    assert row.thumbnail_key == project_thumbnail_key(project_id, 1)
    assert worker_context.storage.head(row.thumbnail_key) is not None
    assert row.thumbnail_key not in session.scalars(select(PendingDeletion.storage_key)).all()


def test_a_late_twin_of_a_recorded_render_never_deletes_the_thumbnail_the_row_shows(
    worker_context, session, monkeypatch
):
    project_id = add_project(session, [element("a", 0)], revision=1)
    key = project_thumbnail_key(project_id, 1)
    real_render = task_module.render

    def twin_records_then_someone_saves(*args, **kwargs):
        made = real_render(*args, **kwargs)
        worker_context.storage.put(key, io.BytesIO(made), content_type="image/webp")
        with worker_context.sessions.begin() as other:
            other.execute(
                update(Project)
                .where(Project.id == uuid.UUID(project_id))
                .values(thumbnail_key=key, thumbnail_revision=1, revision=2)
            )
        return made

    monkeypatch.setattr(task_module, "render", twin_records_then_someone_saves)

    render_project_thumbnail(project_id)

    row = project_row(session, project_id)
    assert (row.thumbnail_key, row.thumbnail_revision, row.revision) == (key, 1, 2)
    assert worker_context.storage.head(key) is not None


def test_a_deleted_project_is_skipped_quietly(worker_context):
    render_project_thumbnail(str(uuid.uuid4()))


def test_the_task_has_its_stable_name_and_takes_json_arguments(worker_context, session):
    project_id = add_project(session, [], revision=1)

    render_project_thumbnail(*json.loads(json.dumps([project_id])))

    assert render_project_thumbnail.name == RENDER_PROJECT_THUMBNAIL
    assert project_row(session, project_id).thumbnail_revision == 1


def test_a_render_sent_under_the_old_name_is_forwarded_to_the_renders_queue(
    worker_context, redis_client, settings
):
    project_id = str(uuid.uuid4())

    forward_legacy_render(*json.loads(json.dumps([project_id])))

    assert forward_legacy_render.name == LEGACY_RENDER_PROJECT_THUMBNAIL == "images.render_project_thumbnail"
    assert len(take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)) == 1
    assert take(redis_client, settings, "images", RENDER_PROJECT_THUMBNAIL, project_id) == []


@pytest.mark.e2e
def test_a_burst_of_autosaves_is_rendered_once_by_a_real_worker(
    broker_app, auth_header, broker_settings, engine, tmp_path
):
    user_id, burst = f"user_burst_{uuid.uuid4().hex[:8]}", f"burst-{uuid.uuid4().hex}"
    headers = {**auth_header(user_id), "Content-Type": "application/json"}
    client = broker_app.test_client()
    project_id = client.get("/v1/projects", headers=headers).json["items"][0]["id"]
    storage = make_storage(broker_settings)
    with Session(engine) as session, session.begin():
        red, green = (stored_asset(session, storage, user_id, "image", colour) for colour in (RED, GREEN))
    # A short window keeps the test quick; the API reads it per save.
    broker_app.extensions["iskra"].settings = broker_settings.model_copy(
        update={"project_thumbnail_debounce_seconds": 1.0}
    )
    layouts = [[element("a", 0, red)]] * 4 + [[element("a", 0, red), element("b", 100, green)]]
    log_path = tmp_path / "worker.log"

    def renders_of_the_burst() -> list[str]:
        # Each task logs the request id of the save that scheduled it; one id per save here.
        lines = (json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{"))
        return [
            line["request_id"]
            for line in lines
            if line.get("request_id", "").startswith(burst) and "succeeded" in line.get("event", "")
        ]

    with running(worker_command("renders"), settings_env(broker_settings), log_path):
        for number, layout in enumerate(layouts):
            state = {"lastModified": 1, "backgroundColor": "#000", "elements": layout}
            saved = client.put(f"/v1/projects/{project_id}/state", json=state,
                               headers={**headers, "X-Request-ID": f"{burst}-{number}"})  # fmt: skip
            assert saved.status_code == 200
        wait_until(renders_of_the_burst, timeout=60)
        listed = client.get("/v1/projects", headers=headers).json["items"][0]
        time.sleep(1.5)  # a second render, had one been scheduled, would have run by now

    assert renders_of_the_burst() == [f"{burst}-0"]
    with client.get(listed["thumbnailUrl"]) as response:
        picture = Image.open(io.BytesIO(response.get_data())).convert("RGB")
    assert picture.size == (400, 200)
    assert near(picture.getpixel((100, 100)), RED) and near(picture.getpixel((300, 100)), GREEN)
    stored = [info.key for info in storage.iter_objects(f"projects/{project_id}/")]
    assert stored == [project_thumbnail_key(project_id, 5)]
