"""Monthly generation counters: atomic take and give back, cycle rollover, the reset task, tiers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from models.errors import BadRequest, GenerationQuotaExceeded, NotFound
from models.generations import give_back, reset_expired_cycles, set_tier, take, usage_of
from models.tables import User
from models.users import ensure_user

SIGNUP = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def signed_up(session: Session, created_at: datetime = SIGNUP, user_id: str = "", **values: object) -> str:
    """A user who signed up at `created_at` and whose stored cycle is the first one."""
    user_id = user_id or f"user_{uuid.uuid4().hex[:12]}"
    ensure_user(session, user_id)
    session.execute(
        update(User)
        .where(User.user_id == user_id)
        .values(
            created_at=created_at,
            billing_cycle_start=created_at,
            billing_cycle_end=datetime(2026, 2, 28, 9, 30, tzinfo=UTC),
            **values,
        )
    )
    return user_id


def row(session: Session, user_id: str) -> User:
    session.expire_all()
    return session.get(User, user_id)


def test_reserving_counts_against_the_plan_and_reports_what_is_left(session):
    user_id = signed_up(session)
    now = datetime(2026, 2, 10, tzinfo=UTC)

    first = take(session, user_id, "image", 4, now)
    second = take(session, user_id, "video", 1, now)

    assert (first.used, first.limit, first.remaining, first.percentage) == (4, 12, 8, 33.33)
    assert (second.used, second.limit, second.remaining) == (1, 3, 2)
    assert (row(session, user_id).images_used_in_period, row(session, user_id).videos_used_in_period) == (
        4,
        1,
    )


def test_a_reservation_that_would_overflow_is_refused_and_takes_nothing(session):
    user_id = signed_up(session, images_used_in_period=10)
    now = datetime(2026, 2, 10, tzinfo=UTC)

    with pytest.raises(GenerationQuotaExceeded) as refused:
        take(session, user_id, "image", 3, now)

    expected = {"used": 10, "limit": 12, "remaining": 2, "generationType": "image"}
    assert refused.value.extra.items() >= expected.items()
    assert row(session, user_id).images_used_in_period == 10
    assert take(session, user_id, "image", 2, now).used == 12


def test_giving_back_never_takes_a_counter_below_zero(session):
    user_id = signed_up(session, images_used_in_period=3)
    now = datetime(2026, 2, 10, tzinfo=UTC)

    assert give_back(session, user_id, "image", 2, now).used == 1
    assert give_back(session, user_id, "image", 5, now).used == 0
    assert row(session, user_id).images_used_in_period == 0


def test_a_reservation_after_the_cycle_ended_starts_a_new_cycle_anchored_to_signup_day(session):
    user_id = signed_up(session, images_used_in_period=12, videos_used_in_period=3)
    now = datetime(2026, 4, 15, tzinfo=UTC)

    reserved = take(session, user_id, "image", 2, now)

    user = row(session, user_id)
    assert (reserved.used, user.images_used_in_period, user.videos_used_in_period) == (2, 2, 0)
    assert user.billing_cycle_start == datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    assert user.billing_cycle_end == datetime(2026, 4, 30, 9, 30, tzinfo=UTC)


def test_a_lapsed_cycle_reads_as_reset_before_anything_writes(session):
    user_id = signed_up(session, images_used_in_period=12)

    usage = usage_of(session, user_id, "image", datetime(2026, 3, 1, tzinfo=UTC))

    assert (usage.used, usage.remaining, usage.cycle_end) == (0, 12, datetime(2026, 3, 31, 9, 30, tzinfo=UTC))


def test_the_reset_task_rolls_only_ended_cycles_and_a_second_run_changes_nothing(session):
    ended = signed_up(session, images_used_in_period=7)
    running = signed_up(session, created_at=datetime(2026, 2, 20, tzinfo=UTC), images_used_in_period=5)
    session.execute(
        update(User)
        .where(User.user_id == running)
        .values(billing_cycle_end=datetime(2026, 3, 20, tzinfo=UTC))
    )
    now = datetime(2026, 3, 1, tzinfo=UTC)

    first = reset_expired_cycles(session, now)
    second = reset_expired_cycles(session, now)

    assert first >= 1
    assert second == 0
    assert row(session, ended).images_used_in_period == 0
    assert row(session, ended).billing_cycle_end == datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    assert row(session, running).images_used_in_period == 5


def test_two_reset_runs_at_once_split_the_work_and_reset_each_user_once(engine):
    prefix = f"user_reset_{uuid.uuid4().hex[:6]}_"
    with Session(engine) as session, session.begin():
        for number in range(40):
            signed_up(session, user_id=f"{prefix}{number}", images_used_in_period=5)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    barrier = Barrier(2)

    def run(_: int) -> int:
        with Session(engine) as session, session.begin():
            barrier.wait()
            return reset_expired_cycles(session, now)

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = list(pool.map(run, range(2)))
        with Session(engine) as session:
            used = session.scalars(select(User.images_used_in_period).where(User.user_id.like(f"{prefix}%")))
            assert set(used) == {0}
        assert sum(counts) == 40
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE user_id LIKE :p"), {"p": f"{prefix}%"})


def test_upgrading_to_pro_accepts_paid_and_resets_the_period_counters(session):
    user_id = signed_up(session, images_used_in_period=12, videos_used_in_period=3)

    assert set_tier(session, user_id, "paid") == ("free", "pro")

    user = row(session, user_id)
    assert (user.tier, user.images_used_in_period, user.videos_used_in_period) == ("pro", 0, 0)
    assert usage_of(session, user_id, "image", datetime(2026, 2, 1, tzinfo=UTC)).limit == 130


def test_downgrading_keeps_the_counters(session):
    user_id = signed_up(session, tier="pro", images_used_in_period=40)

    set_tier(session, user_id, "free")

    assert (row(session, user_id).tier, row(session, user_id).images_used_in_period) == ("free", 40)
    assert usage_of(session, user_id, "image", datetime(2026, 2, 1, tzinfo=UTC)).remaining == 0


def test_an_unknown_tier_or_user_is_refused(session):
    user_id = signed_up(session)

    with pytest.raises(BadRequest):
        set_tier(session, user_id, "platinum")
    with pytest.raises(NotFound):
        set_tier(session, "user_nobody", "pro")
    with pytest.raises(NotFound):
        take(session, "user_nobody", "image", 1, datetime.now(UTC) + timedelta(days=1))
