"""The asset lifecycle's maintenance transitions: stalled assets re-queued or failed, failed ones reset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core import taskqueue
from models.asset_lifecycle import ABANDONED, requeue_stuck
from models.storage.keys import original_key
from models.tables import Asset, User
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


def test_stalled_assets_go_back_to_pending_with_the_task_that_resumes_each(session):
    image = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=20), attempts=1)
    video = _asset(session, "user_stuck", status="pending", age=timedelta(hours=2), type="video")

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert sorted(outcome.requeued) == sorted(
        [(str(image.id), taskqueue.MAKE_IMAGE_RENDITIONS), (str(video.id), taskqueue.MAKE_VIDEO_RENDITIONS)]
    )
    assert outcome.failed == []
    assert _status(session, image) == ("pending", None)


def test_requeued_assets_are_not_requeued_again_until_they_stall_again(session):
    _asset(session, "user_stuck", status="pending", age=timedelta(minutes=20))

    first = requeue_stuck(session, STUCK, max_attempts=3)
    second = requeue_stuck(session, STUCK, max_attempts=3)

    assert len(first.requeued) == 1
    assert second.requeued == [] and second.failed == []


def test_assets_that_used_their_attempts_end_failed_as_abandoned(session):
    asset = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=30), attempts=3)

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert outcome.failed == [str(asset.id)] and outcome.requeued == []
    assert _status(session, asset) == ("failed", ABANDONED)


def test_recent_and_finished_assets_are_left_alone(session):
    recent = _asset(session, "user_stuck", status="processing", age=timedelta(minutes=5))
    ready = _asset(session, "user_stuck", status="ready", age=timedelta(days=3))
    failed = _asset(session, "user_stuck", status="failed", age=timedelta(days=3), error="unsupported-format")

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert outcome.requeued == [] and outcome.failed == []
    assert _status(session, recent)[0] == "processing"
    assert _status(session, ready)[0] == "ready"
    assert _status(session, failed) == ("failed", "unsupported-format")


def test_a_threshold_a_running_task_could_still_be_inside_is_refused(session):
    with pytest.raises(ValueError, match="longest task"):
        requeue_stuck(session, timedelta(minutes=2), max_attempts=3)


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
            one = requeue_stuck(first, STUCK, max_attempts=3, limit=2)
            # The second run skips the rows the first holds and takes the rest.
            two = requeue_stuck(second, STUCK, max_attempts=3)
            first.commit()
            second.commit()
        taken_first, taken_second = {i for i, _ in one.requeued}, {i for i, _ in two.requeued}
        assert len(taken_first) == 2 and not taken_first & taken_second
        assert taken_first | taken_second == ids
    finally:
        with engine.begin() as connection:
            connection.execute(delete(User).where(User.user_id == "user_overlap"))
