"""Self-healing rules: stalled assets re-queued or failed, abandoned objects found, both safe to overlap."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models.maintenance import (
    ABANDONED_ERROR,
    RECONCILE_LOCK,
    SWEEP_LOCK,
    abandoned_objects,
    delete_abandoned_objects,
    requeue_stuck_assets,
    try_reconcile_lock,
    try_sweep_lock,
)
from models.storage import make_storage
from models.storage.keys import original_key, project_thumbnail_key, rendition_key
from models.tables import Asset, Project, User
from models.users import ensure_user

STUCK = timedelta(minutes=15)


def _asset(
    session: Session, user_id: str, *, status: str, age: timedelta, attempts: int = 0, **columns
) -> Asset:
    ensure_user(session, user_id)
    asset_id = uuid.uuid4()
    asset = Asset(
        id=asset_id,
        user_id=user_id,
        type=columns.pop("type", "image"),
        storage_key=columns.pop("storage_key", original_key(user_id, asset_id, "png")),
        mime_type="image/png",
        size_bytes=10,
        status=status,
        attempts=attempts,
        **columns,
    )
    session.add(asset)
    session.flush()
    session.execute(update(Asset).where(Asset.id == asset_id).values(updated_at=datetime.now(UTC) - age))
    return asset


def _status(session: Session, asset: Asset) -> tuple[str, str | None]:
    row = session.execute(select(Asset.status, Asset.error).where(Asset.id == asset.id)).one()
    return row.status, row.error


def test_stalled_assets_go_back_to_pending_grouped_by_type(session):
    image = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=20), attempts=1)
    video = _asset(session, "user_stuck", status="pending", age=timedelta(hours=2), type="video")

    outcome = requeue_stuck_assets(session, STUCK, max_attempts=3)

    assert outcome.requeued == {"image": [str(image.id)], "video": [str(video.id)]}
    assert outcome.failed == []
    assert _status(session, image) == ("pending", None)


def test_requeued_assets_are_not_requeued_again_until_they_stall_again(session):
    _asset(session, "user_stuck", status="pending", age=timedelta(minutes=20))

    first = requeue_stuck_assets(session, STUCK, max_attempts=3)
    second = requeue_stuck_assets(session, STUCK, max_attempts=3)

    assert sum(map(len, first.requeued.values())) == 1
    assert second.requeued == {} and second.failed == []


def test_assets_that_used_their_attempts_end_failed_as_abandoned(session):
    asset = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=30), attempts=3)

    outcome = requeue_stuck_assets(session, STUCK, max_attempts=3)

    assert outcome.failed == [str(asset.id)] and outcome.requeued == {}
    assert _status(session, asset) == ("failed", ABANDONED_ERROR)


def test_recent_and_finished_assets_are_left_alone(session):
    recent = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=5))
    ready = _asset(session, "user_stuck", status="ready", age=timedelta(days=3))
    failed = _asset(session, "user_stuck", status="failed", age=timedelta(days=3), error="unsupported-format")

    outcome = requeue_stuck_assets(session, STUCK, max_attempts=3)

    assert outcome.requeued == {} and outcome.failed == []
    assert _status(session, recent)[0] == "processing"
    assert _status(session, ready)[0] == "ready"
    assert _status(session, failed) == ("failed", "unsupported-format")


def test_a_threshold_a_running_task_could_still_be_inside_is_refused(session):
    with pytest.raises(ValueError, match="longest task"):
        requeue_stuck_assets(session, timedelta(minutes=2), max_attempts=3)


def test_two_overlapping_runs_never_requeue_the_same_asset(engine):
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as session:
        ids = {
            str(_asset(session, "user_overlap", status="pending", age=timedelta(hours=1)).id)
            for _ in range(4)
        }
    try:
        with sessions() as first, sessions() as second:
            first.begin()
            second.begin()
            one = requeue_stuck_assets(first, STUCK, max_attempts=3, limit=2)
            # The second run skips the rows the first holds and takes the rest.
            two = requeue_stuck_assets(second, STUCK, max_attempts=3)
            first.commit()
            second.commit()
        taken_first, taken_second = set(one.requeued["image"]), set(two.requeued["image"])
        assert len(taken_first) == 2 and not taken_first & taken_second
        assert taken_first | taken_second == ids
    finally:
        with engine.begin() as connection:
            connection.execute(delete(User).where(User.user_id == "user_overlap"))


@pytest.fixture
def storage(settings, tmp_path):
    return make_storage(settings.model_copy(update={"storage_local_root": tmp_path / "media"}))


def _put(storage, key: str) -> str:
    storage.put(key, io.BytesIO(b"bytes"), content_type="application/octet-stream")
    return key


def test_abandoned_objects_are_those_no_row_owns(session, storage):
    owned = _asset(session, "user_sweep", status="ready", age=timedelta(0))
    working = _asset(session, "user_sweep", status="processing", age=timedelta(0))
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
    asset = _asset(session, "user_sweep", status=status, age=timedelta(0), thumbnail_key=None)
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
