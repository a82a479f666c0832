"""Project domain operations: a save is one UPDATE (plus one asset SELECT) whatever the element count."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, insert

from models import projects
from models.canvas import parse_canvas_state
from models.errors import BadRequest, NotFound, PreconditionFailed, TooManyProjects
from models.tables import Asset, Project
from models.users import ensure_user

USER = "user_domain"


def raw_canvas(count: int, asset_ids: list[str] | None = None) -> str:
    elements = [
        {"id": f"e{n}", "type": "image", "zIndex": n, "width": 100, "height": 80,
         "transform": {"x": n * 10.0, "y": n * 5.0, "scale": 1, "rotation": 0}}
        | ({"assetId": asset_ids[n % len(asset_ids)]} if asset_ids else {})
        for n in range(count)
    ]  # fmt: skip
    return json.dumps({"lastModified": 1, "elements": elements})


def save(session, project_id, raw, expected=None):
    state = parse_canvas_state(raw.encode(), 1000)
    return projects.save_state(session, USER, project_id, raw, state, expected)


@pytest.fixture
def project_id(session) -> str:
    ensure_user(session, USER)
    project = projects.create_project(session, USER, None, 100)
    session.commit()
    return str(project.id)


@contextmanager
def statements(session) -> Iterator[list[str]]:
    """The SQL statements the session sends inside the block (savepoint bookkeeping left out)."""
    seen: list[str] = []
    connection = session.connection()

    def record(_conn, _cursor, statement, *_rest):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            seen.append(statement.split(None, 1)[0].upper())

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", record)


def add_assets(session, count: int) -> list[str]:
    ids = [uuid.uuid4() for _ in range(count)]
    session.execute(insert(Asset), [
        {"id": i, "user_id": USER, "type": "image", "storage_key": f"originals/d/{i}.png",
         "mime_type": "image/png", "size_bytes": 1} for i in ids
    ])  # fmt: skip
    return [str(i) for i in ids]


@pytest.mark.parametrize("count", [10, 1000])
def test_a_save_without_assets_is_exactly_one_update(session, project_id, count):
    with statements(session) as sent:
        saved = save(session, project_id, raw_canvas(count))

    assert sent == ["UPDATE"]
    assert (saved.revision, saved.image_count) == (1, count)


@pytest.mark.parametrize("count", [10, 1000])
def test_a_save_with_assets_adds_one_ownership_select_whatever_the_count(session, project_id, count):
    asset_ids = add_assets(session, count)

    with statements(session) as sent:
        save(session, project_id, raw_canvas(count, asset_ids))

    assert sent == ["SELECT", "UPDATE"]


def test_a_stale_revision_is_refused_with_the_current_one_and_changes_nothing(session, project_id):
    save(session, project_id, raw_canvas(1))

    with pytest.raises(PreconditionFailed) as caught:
        save(session, project_id, raw_canvas(2), expected=[0])

    assert caught.value.extra == {"currentRevision": 1}
    assert caught.value.headers["ETag"] == '"1"'
    session.expire_all()
    assert len(session.get(Project, uuid.UUID(project_id)).canvas_state["elements"]) == 1


def test_any_listed_revision_matches(session, project_id):
    assert save(session, project_id, raw_canvas(1), expected=[5, 0]).revision == 1


def test_saving_a_missing_project_is_not_found_even_with_a_revision(session, project_id):
    with pytest.raises(NotFound):
        save(session, str(uuid.uuid4()), raw_canvas(1), expected=[0])


def test_default_names_count_up_with_two_digits_and_the_cap_holds(session):
    ensure_user(session, USER)  # creates Project 01
    names = [projects.create_project(session, USER, None, 12).name for _ in range(11)]

    assert names[0] == "Iskra Project 02"
    assert names[-1] == "Iskra Project 12"
    with pytest.raises(TooManyProjects):
        projects.create_project(session, USER, None, 12)


def test_the_list_cursor_round_trips_and_foreign_cursors_are_refused(session):
    ensure_user(session, USER)
    for _ in range(2):
        projects.create_project(session, USER, None, 100)

    first, cursor = projects.list_projects(session, USER, 2, None)
    rest, end = projects.list_projects(session, USER, 2, cursor)

    assert len(first) == 2 and len(rest) == 1 and end is None
    assert {p.id for p in first}.isdisjoint({p.id for p in rest})
    with pytest.raises(BadRequest):
        projects.list_projects(session, USER, 2, "bm90LWEtY3Vyc29y")
