"""Each visible transition records its event in its own transaction; PostgreSQL delivers only commits."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import sessionmaker

from models import events, projects
from models.asset_lifecycle import claim_for_rendering, create_import, create_upload, record_renditions
from models.assets import delete_asset
from models.canvas import parse_canvas_state
from models.errors import GenerationQuotaExceeded
from models.project_thumbnails import record_thumbnail
from models.reservations import reserve
from models.storage.keys import original_key
from models.users import ensure_user
from web.events.relay import libpq_url

THUMBNAIL = "projects/thumb-1.webp"


class Recorded(list):
    """The events recorded on the test's connection so far, decoded, oldest first."""

    def types(self) -> list[str]:
        return [item["t"] for item in self]

    def of(self, event_type: str) -> list[dict]:
        return [item for item in self if item["t"] == event_type]


@pytest.fixture
def recorded(connection) -> Iterator[Recorded]:
    seen = Recorded()

    def spy(_conn, _cursor, statement, parameters, _context, _many) -> None:
        # Events built in Python arrive as (channel, payload); a project's is built in SQL (test below).
        if "pg_notify" in statement and len(parameters) == 2:
            channel, payload = parameters.values()
            assert channel == events.CHANNEL
            seen.append(json.loads(payload))

    event.listen(connection, "before_cursor_execute", spy)
    yield seen
    event.remove(connection, "before_cursor_execute", spy)


def _user(session) -> str:
    user_id = f"user_{uuid.uuid4().hex[:10]}"
    ensure_user(session, user_id)
    return user_id


def _upload(session, user_id: str, size: int = 1000, **generation):
    asset_id = uuid.uuid4()
    return create_upload(
        session, asset_id=asset_id, user_id=user_id, asset_type="image",
        storage_key=original_key(user_id, asset_id, "jpg"), mime_type="image/jpeg", size_bytes=size,
        generation=generation,
    )  # fmt: skip


def test_an_upload_records_its_usage_then_its_pending_asset_with_urls_to_sign(session, recorded):
    user_id = _user(session)
    recorded.clear()

    asset = _upload(session, user_id, size=1234, prompt="a red fox")

    assert recorded.types() == ["usage", "asset"]
    usage, created = recorded
    assert usage["u"] == created["u"] == user_id
    assert usage["b"]["storage"]["usedBytes"] == 1234
    assert created["b"]["id"] == str(asset.id) and created["b"]["status"] == "pending"
    assert created["b"]["metadata"]["prompt"] == "a red fox"
    assert created["s"]["urls.original"] == [asset.storage_key, "image/jpeg"]
    assert created["s"]["urls.thumbnail"] == [None, None]
    assert created["s"]["urls.display"] == created["s"]["urls.original"]


def test_rendering_records_processing_then_ready_and_a_lost_race_records_nothing(session, recorded):
    asset = _upload(session, _user(session))
    recorded.clear()

    claim_for_rendering(session, str(asset.id), max_attempts=3)
    record_renditions(session, asset.id, {"thumbnail": "renditions/x/thumb.webp"}, {"width": 10, "height": 8})
    again = record_renditions(session, asset.id, {"thumbnail": "renditions/x/other.webp"}, {})

    assert again is False
    assert [item["b"]["status"] for item in recorded] == ["processing", "ready"]
    assert recorded[-1]["s"]["urls.thumbnail"] == ["renditions/x/thumb.webp", None]
    assert (recorded[-1]["b"]["width"], recorded[-1]["b"]["height"]) == (10, 8)


def test_a_delete_records_the_usage_given_back_and_the_deleted_asset(session, recorded):
    user_id = _user(session)
    asset = _upload(session, user_id)
    recorded.clear()

    delete_asset(session, user_id, str(asset.id))

    assert recorded.types() == ["usage", "asset"]
    assert recorded[0]["b"]["storage"]["usedBytes"] == 0
    assert recorded[1]["b"] == {"id": str(asset.id), "status": "deleted"}


def _delivered(engine, settings, change) -> list[dict]:
    """The events PostgreSQL delivers for `change(session)`, committed; the user's rows are removed after."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {events.CHANNEL}")
        with sessions.begin() as session:
            user_id = _user(session)
            change(session, user_id)
        delivered = [json.loads(note.payload) for note in listener.notifies(timeout=1.0)]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM projects WHERE user_id = :u"), {"u": user_id})
        connection.execute(text("DELETE FROM users WHERE user_id = :u"), {"u": user_id})
        connection.execute(text("DELETE FROM pending_deletions WHERE storage_key = :k"), {"k": THUMBNAIL})
    return [item for item in delivered if item["u"] == user_id]


def test_project_saves_renames_renders_and_deletes_each_record_a_project_event(engine, settings):
    raw = '{"elements": [], "lastModified": 1}'
    created = {}

    def change(session, user_id):
        project = created["project"] = projects.create_project(session, user_id, "Mine", max_projects=100)
        state = parse_canvas_state(raw.encode(), 1000)
        saved = projects.save_state(session, user_id, str(project.id), raw, state, None)
        created["saved_at"] = saved.last_saved_at
        projects.rename_project(session, user_id, str(project.id), "Renamed")
        record_thumbnail(session, project.id, 1, THUMBNAIL)
        projects.delete_project(session, user_id, str(project.id))

    delivered = _delivered(engine, settings, change)

    project_id = str(created["project"].id)
    mine = [item for item in delivered if item["t"] == "project" and item["b"]["id"] == project_id]
    bodies = [item["b"] for item in mine]
    assert [(body.get("name"), body.get("revision")) for body in bodies[:4]] == [
        ("Mine", 0), ("Mine", 1), ("Renamed", 1), ("Renamed", 1)
    ]  # fmt: skip
    assert bodies[1]["lastSavedAt"] == int(created["saved_at"].timestamp() * 1000)
    assert [item.get("s") for item in mine[:4]] == [{"thumbnailUrl": [None, None]}] * 3 + [
        {"thumbnailUrl": [THUMBNAIL, None]}
    ]
    assert bodies[-1] == {"id": project_id, "deleted": True}
    assert set(bodies[1]) == {"id", "name", "revision", "lastSavedAt", "thumbnailUrl"}
    assert len({item["n"] for item in mine}) == len(mine)


def test_a_generation_reservation_records_usage_and_a_refused_one_records_nothing(session, recorded):
    user_id = _user(session)
    recorded.clear()

    reserve(session, user_id, "video", 3)
    with pytest.raises(GenerationQuotaExceeded):
        reserve(session, user_id, "video", 1)

    assert recorded.types() == ["usage"]
    assert recorded[0]["b"]["generations"]["video"] == {
        "used": 3,
        "limit": 3,
        "remaining": 0,
        "percentage": 100.0,
    }


def test_an_asset_too_long_to_notify_is_recorded_as_its_id_for_the_relay_to_read(session, recorded):
    user_id = _user(session)
    recorded.clear()

    asset = create_import(
        session, user_id=user_id, asset_type="image", source_url="https://example.com/a.png",
        generation={"prompt": "ж" * 4000, **{name: "x" * 200 for name in ("model", "provider", "weather")}},
    )  # fmt: skip

    assert [(item["u"], item["t"], item["reread"]) for item in recorded] == [
        (user_id, "asset", str(asset.id))
    ]
    assert "b" not in recorded[0]


def test_postgresql_delivers_committed_events_only_in_commit_order(engine, settings):
    sessions = sessionmaker(engine)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {events.CHANNEL}")
        with sessions.begin() as session:
            user_id = _user(session)
        session = sessions()
        with session.begin():
            reserve(session, user_id, "image", 5)
            session.rollback()
        with sessions.begin() as session:
            reserve(session, user_id, "image", 1)
        with sessions.begin() as session:
            reserve(session, user_id, "image", 2)
        delivered = [json.loads(note.payload) for note in listener.notifies(timeout=2.0)]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM projects WHERE user_id = :u"), {"u": user_id})
        connection.execute(text("DELETE FROM users WHERE user_id = :u"), {"u": user_id})

    usage = [item["b"]["generations"]["image"]["used"] for item in delivered if item["t"] == "usage"]
    assert usage == [1, 3]
