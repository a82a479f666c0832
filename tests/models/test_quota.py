"""The atomic storage reservation and release."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from models.errors import QuotaExceeded
from models.plans import MIB
from models.quota import check_room, release_storage, reserve_storage
from models.tables import User
from models.users import ensure_user

FREE_QUOTA = 500 * MIB


def test_a_reservation_that_fits_adds_the_bytes(session):
    ensure_user(session, "user_fits")

    assert reserve_storage(session, "user_fits", 1000) == 1000
    assert reserve_storage(session, "user_fits", FREE_QUOTA - 1000) == FREE_QUOTA


def test_a_reservation_one_byte_over_the_quota_is_refused_and_changes_nothing(session):
    user = ensure_user(session, "user_edge")
    user.storage_used_bytes = FREE_QUOTA - 10
    session.flush()

    with pytest.raises(QuotaExceeded) as refused:
        reserve_storage(session, "user_edge", 11)

    assert refused.value.extra == {
        "usedBytes": FREE_QUOTA - 10,
        "quotaBytes": FREE_QUOTA,
        "requestedBytes": 11,
    }
    session.refresh(user)
    assert user.storage_used_bytes == FREE_QUOTA - 10


def test_the_quota_follows_the_users_plan(session):
    user = ensure_user(session, "user_pro")
    user.tier = "pro"
    session.flush()

    assert reserve_storage(session, "user_pro", FREE_QUOTA + 1) == FREE_QUOTA + 1


def test_a_release_never_goes_below_zero(session):
    ensure_user(session, "user_release")
    reserve_storage(session, "user_release", 100)

    assert release_storage(session, "user_release", 40) == 60
    assert release_storage(session, "user_release", 1000) == 0


def test_the_early_check_refuses_without_changing_usage(session):
    user = ensure_user(session, "user_check")
    user.storage_used_bytes = FREE_QUOTA
    session.flush()

    with pytest.raises(QuotaExceeded):
        check_room(session, "user_check", 1)
    check_room(session, "user_check", 0)


def test_concurrent_reservations_never_overshoot_the_quota(engine):
    with Session(engine) as session, session.begin():
        ensure_user(session, "user_quota_race").storage_used_bytes = FREE_QUOTA - 5 * 100
    barrier = Barrier(12)

    def reserve() -> bool:
        with Session(engine) as session, session.begin():
            barrier.wait()
            try:
                reserve_storage(session, "user_quota_race", 100)
            except QuotaExceeded:
                return False
            return True

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            outcomes = list(pool.map(lambda _: reserve(), range(12)))
        with Session(engine) as session:
            used = session.get(User, "user_quota_race").storage_used_bytes
        assert (outcomes.count(True), used) == (5, FREE_QUOTA)
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE user_id = 'user_quota_race'"))
