"""The usage report: storage against the plan, generations this cycle, and the days until it resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.plans import MIB
from models.tables import User
from models.usage import usage_report
from models.users import ensure_user

SIGNUP = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
FIRST_CYCLE_END = datetime(2026, 2, 28, 9, 30, tzinfo=UTC)


def user_with(session: Session, user_id: str, **values: object) -> User:
    """A user who signed up at SIGNUP, still in their first cycle, with `values` on their row."""
    ensure_user(session, user_id)
    session.execute(
        update(User)
        .where(User.user_id == user_id)
        .values(created_at=SIGNUP, billing_cycle_start=SIGNUP, billing_cycle_end=FIRST_CYCLE_END, **values)
    )
    session.expire_all()
    return session.get(User, user_id)


def test_the_report_shows_storage_and_each_generation_counter_against_the_plan(session):
    user = user_with(
        session, "user_report", storage_used_bytes=400 * MIB, images_used_in_period=3, videos_used_in_period=3
    )

    report = usage_report(session, user, datetime(2026, 2, 10, tzinfo=UTC))

    storage = report.storage
    assert (storage.used_bytes, storage.quota_bytes, storage.percentage, storage.status) == (
        400 * MIB,
        500 * MIB,
        80.0,
        "warning",
    )
    assert (report.images.used, report.images.limit, report.images.remaining, report.images.percentage) == (
        3,
        12,
        9,
        25.0,
    )
    assert (report.videos.used, report.videos.remaining, report.videos.percentage) == (3, 0, 100.0)
    assert (report.cycle_start, report.cycle_end) == (SIGNUP, FIRST_CYCLE_END)


def test_days_until_reset_count_a_started_day_as_a_whole_one(session):
    report = usage_report(session, user_with(session, "user_days"), datetime(2026, 2, 10, tzinfo=UTC))

    assert report.days_until_reset(FIRST_CYCLE_END - timedelta(days=2, hours=1)) == 3
    assert report.days_until_reset(FIRST_CYCLE_END - timedelta(days=1)) == 1
    assert report.days_until_reset(FIRST_CYCLE_END - timedelta(seconds=1)) == 1
    assert report.days_until_reset(FIRST_CYCLE_END) == 0


def test_a_lapsed_cycle_reports_the_next_one_empty_before_anything_writes(session):
    user = user_with(session, "user_lapsed_report", images_used_in_period=12, videos_used_in_period=3)
    now = datetime(2026, 3, 10, tzinfo=UTC)

    report = usage_report(session, user, now)

    assert (report.images.used, report.videos.used) == (0, 0)
    assert (report.cycle_start, report.cycle_end) == (FIRST_CYCLE_END, SIGNUP.replace(month=3))
    assert report.days_until_reset(now) == 22
