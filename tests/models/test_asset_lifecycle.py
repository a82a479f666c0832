"""The asset lifecycle's maintenance transitions: stalled assets re-queued or failed, failed ones reset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from core import taskqueue
from models.asset_lifecycle import ABANDONED, requeue_stuck
from models.tables import User
from tests.models.aged_assets import aged_asset, status_of

STUCK = timedelta(minutes=15)


def test_stalled_assets_go_back_to_pending_with_the_task_that_resumes_each(session):
    image = aged_asset(session, "user_stuck", status="processing", age=timedelta(minutes=20), attempts=1)
    video = aged_asset(session, "user_stuck", status="pending", age=timedelta(hours=2), type="video")

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert sorted(outcome.requeued) == sorted(
        [(str(image.id), taskqueue.MAKE_IMAGE_RENDITIONS), (str(video.id), taskqueue.MAKE_VIDEO_RENDITIONS)]
    )
    assert outcome.failed == []
    assert status_of(session, image) == ("pending", None)


def test_requeued_assets_are_not_requeued_again_until_they_stall_again(session):
    aged_asset(session, "user_stuck", status="pending", age=timedelta(minutes=20))

    first = requeue_stuck(session, STUCK, max_attempts=3)
    second = requeue_stuck(session, STUCK, max_attempts=3)

    assert len(first.requeued) == 1
    assert second.requeued == [] and second.failed == []


def test_assets_that_used_their_attempts_end_failed_as_abandoned(session):
    asset = aged_asset(session, "user_stuck", status="processing", age=timedelta(minutes=30), attempts=3)

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert outcome.failed == [str(asset.id)] and outcome.requeued == []
    assert status_of(session, asset) == ("failed", ABANDONED)


def test_recent_and_finished_assets_are_left_alone(session):
    recent = aged_asset(session, "user_stuck", status="processing", age=timedelta(minutes=5))
    ready = aged_asset(session, "user_stuck", status="ready", age=timedelta(days=3))
    failed = aged_asset(
        session, "user_stuck", status="failed", age=timedelta(days=3), error="unsupported-format"
    )

    outcome = requeue_stuck(session, STUCK, max_attempts=3)

    assert outcome.requeued == [] and outcome.failed == []
    assert status_of(session, recent)[0] == "processing"
    assert status_of(session, ready)[0] == "ready"
    assert status_of(session, failed) == ("failed", "unsupported-format")


def test_a_threshold_a_running_task_could_still_be_inside_is_refused(session):
    with pytest.raises(ValueError, match="longest task"):
        requeue_stuck(session, timedelta(minutes=2), max_attempts=3)


def test_two_overlapping_runs_never_requeue_the_same_asset(engine):
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions.begin() as session:
        ids = {
            str(aged_asset(session, "user_overlap", status="pending", age=timedelta(hours=1)).id)
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
