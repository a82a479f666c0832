"""Self-healing storage: abandoned objects found and removed, safe to overlap."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from models.maintenance import (
    RECONCILE_LOCK,
    SWEEP_LOCK,
    abandoned_objects,
    delete_abandoned_objects,
    try_reconcile_lock,
    try_sweep_lock,
)
from models.storage import make_storage
from models.storage.keys import original_key, project_thumbnail_key, rendition_key
from models.tables import Project
from models.users import ensure_user
from tests.models.aged_assets import aged_asset

STUCK = timedelta(minutes=15)


@pytest.fixture
def storage(settings, tmp_path):
    return make_storage(settings.model_copy(update={"storage_local_root": tmp_path / "media"}))


def _put(storage, key: str) -> str:
    storage.put(key, io.BytesIO(b"bytes"), content_type="application/octet-stream")
    return key


def test_abandoned_objects_are_those_no_row_owns(session, storage):
    owned = aged_asset(session, "user_sweep", status="ready", age=timedelta(0))
    working = aged_asset(session, "user_sweep", status="processing", age=timedelta(0))
    project = Project(user_id="user_sweep", name="P", canvas_state={"elements": [], "lastModified": 0})
    session.add(project)
    session.flush()
    current_thumbnail = project_thumbnail_key(project.id, 2)
    project.thumbnail_key = current_thumbnail
    session.flush()
    kept = {
        _put(storage, owned.storage_key),
        _put(storage, rendition_key(working.id, "thumbnail-1-abcd")),  # an unfinished asset's, unrecorded
        _put(storage, current_thumbnail),
    }
    orphaned = {
        _put(storage, original_key("user_sweep", uuid.uuid4(), "jpg")),  # upload whose row never came
        _put(storage, rendition_key(uuid.uuid4(), "thumbnail")),  # rendition of a deleted asset
        _put(storage, rendition_key(owned.id, "thumbnail-1-abcd")),  # a finished asset's, unreferenced
        _put(storage, project_thumbnail_key(project.id, 1)),  # superseded project thumbnail
    }
    later = datetime.now(UTC) + timedelta(hours=2)

    found = set(abandoned_objects(session, storage, timedelta(hours=1), now=later))

    assert found == orphaned
    assert not found & kept


@pytest.mark.parametrize("status", ["ready", "failed"])
def test_a_finished_assets_objects_it_does_not_reference_are_abandoned(session, storage, status):
    asset = aged_asset(session, "user_sweep", status=status, age=timedelta(0), thumbnail_key=None)
    referenced = _put(storage, asset.storage_key)
    dead_attempts = {
        _put(storage, rendition_key(asset.id, "thumbnail-2-dead")),
        _put(storage, original_key("user_sweep", asset.id, "jpg", version="dead")),
    }
    later = datetime.now(UTC) + timedelta(hours=2)

    found = set(abandoned_objects(session, storage, timedelta(hours=1), now=later))

    assert found == dead_attempts
    assert referenced not in found


def test_objects_younger_than_the_grace_period_are_kept(session, storage):
    ensure_user(session, "user_sweep")
    _put(storage, original_key("user_sweep", uuid.uuid4(), "jpg"))

    assert list(abandoned_objects(session, storage, timedelta(hours=1))) == []


def test_deleting_abandoned_objects_removes_them_from_storage(session, storage):
    key = _put(storage, original_key("user_sweep", uuid.uuid4(), "jpg"))

    deleted = delete_abandoned_objects(
        session, storage, timedelta(0), now=datetime.now(UTC) + timedelta(minutes=1)
    )

    assert deleted == [key]
    assert storage.head(key) is None


@pytest.mark.parametrize(
    ("take_lock", "key"), [(try_sweep_lock, SWEEP_LOCK), (try_reconcile_lock, RECONCILE_LOCK)]
)
def test_only_one_run_of_a_locked_job_holds_its_lock_at_a_time(engine, take_lock, key):
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        second.begin()
        with Session(bind=first) as one, Session(bind=second) as two:
            assert take_lock(one)
            assert not take_lock(two)
        first.rollback()  # the lock is transaction-scoped: released here
        assert second.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})


def test_the_sweep_and_the_reconciliation_do_not_block_each_other(engine):
    with engine.connect() as first, engine.connect() as second:
        first.begin()
        second.begin()
        with Session(bind=first) as one, Session(bind=second) as two:
            assert try_sweep_lock(one) and try_reconcile_lock(two)
