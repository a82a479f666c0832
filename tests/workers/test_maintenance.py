"""Maintenance tasks called directly: re-queue, sweep, reconcile (each safe to overlap); beat sends them."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import sessionmaker

from core import taskqueue
from models.maintenance import RECONCILE_LOCK
from models.storage.keys import original_key, rendition_key
from models.tables import Asset, PendingDeletion, User
from models.users import ensure_user
from tests.queues import take
from tests.workers.rendition_support import add_asset
from workers.maintenance import requeue_stuck_assets, sweep_abandoned_uploads
from workers.schedule import beat_schedule
from workers.storage_tasks import purge_deleted_objects, reconcile_storage


@pytest.fixture
def maintenance_context(worker_context, settings):
    worker_context.celery = taskqueue.make_client(settings)
    return worker_context


def _backdate(sessions, asset_id: str, **columns) -> None:
    with sessions.begin() as session:
        session.execute(
            update(Asset)
            .where(Asset.id == uuid.UUID(asset_id))
            .values(updated_at=datetime.now(UTC) - timedelta(hours=1), **columns)
        )


def test_requeue_sends_each_stalled_asset_to_its_rendition_queue(
    maintenance_context, sessions, redis_client, settings
):
    image = add_asset(sessions, maintenance_context.storage, b"image", user_id="user_requeue")
    video = add_asset(sessions, maintenance_context.storage, b"video", type="video", user_id="user_requeue")
    _backdate(sessions, image, status="processing", attempts=1)
    _backdate(sessions, video)

    assert requeue_stuck_assets() == {"requeued": 2, "failed": 0}

    sent_image = take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, image)
    sent_video = take(redis_client, settings, "videos", taskqueue.MAKE_VIDEO_RENDITIONS, video)
    assert len(sent_image) == 1 and len(sent_video) == 1
    # A re-queued copy expires by the next stall deadline, so an idle queue never collects duplicates.
    assert sent_image[0].headers["expires"] is not None


def test_requeue_fails_what_used_its_attempts_and_sends_nothing_for_it(
    maintenance_context, sessions, redis_client, settings
):
    asset_id = add_asset(sessions, maintenance_context.storage, b"image", user_id="user_requeue")
    _backdate(sessions, asset_id, status="processing", attempts=settings.max_processing_attempts)

    assert requeue_stuck_assets() == {"requeued": 0, "failed": 1}

    assert take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, asset_id) == []
    with sessions() as session:
        assert (
            session.scalar(select(Asset.error).where(Asset.id == uuid.UUID(asset_id)))
            == "processing-abandoned"
        )


def test_sweep_deletes_objects_no_row_owns_once_past_the_grace_period(maintenance_context, sessions):
    storage = maintenance_context.storage
    orphan = original_key("user_sweep_task", uuid.uuid4(), "jpg")
    storage.put(orphan, io.BytesIO(b"left behind"), content_type="image/jpeg")
    kept = add_asset(sessions, storage, b"kept", user_id="user_sweep_task")
    maintenance_context.settings = maintenance_context.settings.model_copy(
        update={"abandoned_upload_grace_minutes": 0}
    )

    assert sweep_abandoned_uploads() >= 1

    assert storage.head(orphan) is None
    with sessions() as session:
        kept_key = session.scalar(select(Asset.storage_key).where(Asset.id == uuid.UUID(kept)))
    assert storage.head(kept_key) is not None


def test_renditions_of_a_crashed_attempt_are_swept_once_the_asset_is_given_up_on(
    maintenance_context, sessions, settings
):
    storage = maintenance_context.storage
    asset_id = add_asset(sessions, storage, b"image", user_id="user_sweep_task")
    dead = rendition_key(asset_id, "thumbnail-3-deadbeef")  # stored, then the worker died before the commit
    storage.put(dead, io.BytesIO(b"half"), content_type="image/webp")
    _backdate(sessions, asset_id, status="processing", attempts=settings.max_processing_attempts)
    maintenance_context.settings = maintenance_context.settings.model_copy(
        update={"abandoned_upload_grace_minutes": 0}
    )

    assert requeue_stuck_assets() == {"requeued": 0, "failed": 1}
    sweep_abandoned_uploads()

    assert storage.head(dead) is None
    with sessions() as session:
        original = session.scalar(select(Asset.storage_key).where(Asset.id == uuid.UUID(asset_id)))
    assert storage.head(original) is not None


def test_a_second_sweep_while_one_runs_does_nothing(maintenance_context, engine):
    orphan = original_key("user_sweep_task", uuid.uuid4(), "jpg")
    maintenance_context.storage.put(orphan, io.BytesIO(b"left behind"), content_type="image/jpeg")
    maintenance_context.settings = maintenance_context.settings.model_copy(
        update={"abandoned_upload_grace_minutes": 0}
    )
    with engine.connect() as other:
        other.begin()
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(7283101)"))

        assert sweep_abandoned_uploads() == 0

    assert maintenance_context.storage.head(orphan) is not None
    maintenance_context.storage.delete(orphan)


def test_a_second_purge_while_one_runs_skips_its_rows_instead_of_waiting_or_repeating_them(
    worker_context, engine
):
    storage, committed = worker_context.storage, sessionmaker(engine, expire_on_commit=False)
    keys = [original_key("user_purge_overlap", uuid.uuid4(), "jpg") for _ in range(4)]
    with committed.begin() as session:
        rows = [PendingDeletion(storage_key=key) for key in keys]
        session.add_all(rows)
    for key in keys:
        storage.put(key, io.BytesIO(b"deleted asset"), content_type="image/jpeg")
    held = [row.id for row in rows[:2]]
    worker_context.sessions = committed  # the second run needs its own connection, as on another worker
    second: list[int] = []
    runner = threading.Thread(target=lambda: second.append(purge_deleted_objects()))
    try:
        with engine.connect() as first:
            first.begin()  # the first run has claimed its batch and is still deleting
            first.execute(
                select(PendingDeletion.id).where(PendingDeletion.id.in_(held)).with_for_update()
            ).all()
            runner.start()
            runner.join(timeout=20)
            assert not runner.is_alive(), "the second purge waited for the first one's rows"
            assert [storage.head(key) is None for key in keys] == [False, False, True, True]
        with committed() as session:
            left = session.scalars(select(PendingDeletion.id).where(PendingDeletion.storage_key.in_(keys)))
            assert sorted(left) == sorted(held)
    finally:
        if runner.is_alive():
            runner.join()
        with engine.begin() as connection:
            connection.execute(delete(PendingDeletion).where(PendingDeletion.storage_key.in_(keys)))
        for key in keys:
            storage.delete(key)
    assert second and second[0] >= 2


def test_beat_sends_every_maintenance_task_to_the_maintenance_queue():
    schedule = beat_schedule()

    assert {entry["task"] for entry in schedule.values()} == {
        taskqueue.PURGE_DELETED_OBJECTS,
        taskqueue.REQUEUE_STUCK_ASSETS,
        taskqueue.RECONCILE_STORAGE,
        taskqueue.SWEEP_ABANDONED_UPLOADS,
        taskqueue.ABORT_STALE_MULTIPART_UPLOADS,
        taskqueue.RESET_GENERATION_CYCLES,
    }
    for entry in schedule.values():
        assert entry["options"]["queue"] == "maintenance"
        # A backlog of one kind of maintenance never holds more than one pending copy.
        assert 0 < entry["options"]["expires"] < entry["schedule"]


def test_every_scheduled_task_is_registered_by_the_worker_modules():
    import celery

    import workers.generation_tasks
    import workers.maintenance
    import workers.storage_tasks  # noqa: F401 - registering is the point

    registered = set(celery.current_app.tasks)

    assert {entry["task"] for entry in beat_schedule().values()} <= registered


def test_a_second_reconciliation_while_one_runs_changes_nothing(worker_context, sessions, engine):
    with sessions.begin() as session:
        ensure_user(session, "user_reconcile_task").storage_used_bytes = 7
    with engine.connect() as other:
        other.begin()
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RECONCILE_LOCK})

        assert reconcile_storage() == []

    with sessions() as session:
        assert session.get(User, "user_reconcile_task").storage_used_bytes == 7
