"""Generation reservations: reserve, refund only what a reservation holds, settle, expire, race."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.errors import NotFound, ReservationClosed, ValidationFailed
from models.reservations import RESERVATION_TTL, ReservationStatus, refund, reserve, settle, status_of
from models.tables import GenerationReservation, User
from tests.models.test_generations import row, signed_up

NOW = datetime(2026, 2, 10, tzinfo=UTC)
CYCLE_END = datetime(2026, 2, 28, 9, 30, tzinfo=UTC)


def reservation(session: Session, reservation_id: uuid.UUID) -> GenerationReservation:
    session.expire_all()
    return session.get(GenerationReservation, reservation_id)


def test_a_reservation_takes_from_the_counter_and_is_open_for_an_hour(session):
    user_id = signed_up(session)

    reserved = reserve(session, user_id, "video", 2, NOW)

    stored = reservation(session, reserved.reservation_id)
    assert (reserved.generations.used, reserved.generations.remaining) == (2, 1)
    assert reserved.expires_at == NOW + RESERVATION_TTL == NOW + timedelta(hours=1)
    assert (stored.user_id, stored.type, stored.count, stored.refunded, stored.settled) == (
        user_id,
        "video",
        2,
        0,
        0,
    )
    assert (status_of(stored, NOW), stored.cycle_end) == (ReservationStatus.OPEN, CYCLE_END)
    assert row(session, user_id).videos_used_in_period == 2


def test_refunding_a_reservation_twice_gives_back_only_once(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "video", 3, NOW)

    first = refund(session, user_id, str(reserved.reservation_id), 3, now=NOW)
    with pytest.raises(ReservationClosed) as second:
        refund(session, user_id, str(reserved.reservation_id), 3, now=NOW)

    assert (first.refunded, first.generations.used) == (3, 0)
    assert second.value.extra["reservationStatus"] == "refunded"
    assert row(session, user_id).videos_used_in_period == 0
    assert status_of(reservation(session, reserved.reservation_id), NOW) == ReservationStatus.REFUNDED


def test_a_refund_never_gives_back_units_another_reservation_holds(session):
    user_id = signed_up(session)
    small = reserve(session, user_id, "image", 2, NOW)
    reserve(session, user_id, "image", 5, NOW)

    clamped = refund(session, user_id, str(small.reservation_id), 10, now=NOW)
    with pytest.raises(ReservationClosed):
        refund(session, user_id, str(small.reservation_id), now=NOW)

    assert (clamped.refunded, clamped.generations.used) == (2, 5)
    assert row(session, user_id).images_used_in_period == 5


def test_partial_refunds_add_up_to_at_most_what_was_reserved(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "image", 3, NOW)
    reservation_id = str(reserved.reservation_id)

    one = refund(session, user_id, reservation_id, 1, now=NOW)
    rest = refund(session, user_id, reservation_id, now=NOW)

    assert [one.refunded, rest.refunded] == [1, 2]
    assert [one.generations.used, rest.generations.used] == [2, 0]
    assert reservation(session, reserved.reservation_id).status == "refunded"


def test_settled_units_are_kept_and_only_the_rest_can_be_refunded(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "image", 3, NOW)
    reservation_id = str(reserved.reservation_id)

    settle(session, user_id, reservation_id, "image", NOW)
    refunded = refund(session, user_id, reservation_id, 3, now=NOW)

    assert (refunded.refunded, refunded.generations.used) == (2, 1)
    stored = reservation(session, reserved.reservation_id)
    assert (stored.settled, stored.refunded, stored.status) == (1, 2, "settled")


def test_a_fully_settled_reservation_is_closed_to_refunds_and_further_settlement(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "video", 1, NOW)
    reservation_id = str(reserved.reservation_id)

    settle(session, user_id, reservation_id, "video", NOW)

    with pytest.raises(ReservationClosed) as refunding:
        refund(session, user_id, reservation_id, now=NOW)
    with pytest.raises(ReservationClosed):
        settle(session, user_id, reservation_id, "video", NOW)
    assert refunding.value.extra["reservationStatus"] == "settled"
    assert row(session, user_id).videos_used_in_period == 1


def test_an_expired_reservation_gives_nothing_back_and_settles_nothing(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "image", 2, NOW)
    reservation_id, later = str(reserved.reservation_id), reserved.expires_at

    with pytest.raises(ReservationClosed) as refunding:
        refund(session, user_id, reservation_id, now=later)
    with pytest.raises(ReservationClosed):
        settle(session, user_id, reservation_id, "image", later)

    assert refunding.value.extra["reservationStatus"] == "expired"
    assert row(session, user_id).images_used_in_period == 2
    stored = reservation(session, reserved.reservation_id)
    assert (stored.refunded, stored.settled, status_of(stored, later)) == (0, 0, ReservationStatus.EXPIRED)


def test_a_reservation_from_the_last_cycle_gives_nothing_back_to_the_new_cycle(session):
    user_id = signed_up(session)
    before_end = CYCLE_END - timedelta(minutes=10)
    old = reserve(session, user_id, "video", 3, before_end)
    after_end = CYCLE_END + timedelta(minutes=5)
    new = reserve(session, user_id, "video", 2, after_end)

    with pytest.raises(ReservationClosed):
        refund(session, user_id, str(old.reservation_id), now=after_end)

    assert new.generations.used == 2
    assert row(session, user_id).videos_used_in_period == 2
    # Settling what the old reservation paid for is still allowed while it has not expired.
    settle(session, user_id, str(old.reservation_id), "video", after_end)


@pytest.mark.parametrize("transition", ["refund", "settle"])
def test_an_unknown_malformed_or_someone_elses_reservation_is_not_found(session, transition):
    owner, other = signed_up(session), signed_up(session)
    reserved = reserve(session, owner, "image", 1, NOW)

    def attempt(user_id: str, reservation_id: str) -> None:
        if transition == "refund":
            refund(session, user_id, reservation_id, now=NOW)
        else:
            settle(session, user_id, reservation_id, "image", NOW)

    for user_id, reservation_id in [
        (other, str(reserved.reservation_id)),
        (owner, str(uuid.uuid4())),
        (owner, "not-a-uuid"),
    ]:
        with pytest.raises(NotFound):
            attempt(user_id, reservation_id)
    assert reservation(session, reserved.reservation_id).status == "open"
    assert row(session, owner).images_used_in_period == 1


def test_a_type_other_than_the_reservations_is_refused_and_changes_nothing(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "video", 2, NOW)
    reservation_id = str(reserved.reservation_id)

    with pytest.raises(ValidationFailed) as refunding:
        refund(session, user_id, reservation_id, type_="image", now=NOW)
    with pytest.raises(ValidationFailed):
        settle(session, user_id, reservation_id, "image", NOW)

    assert refunding.value.extra["reservationType"] == "video"
    assert refund(session, user_id, reservation_id, type_="video", now=NOW).refunded == 2


def test_the_table_refuses_units_beyond_the_reserved_count(session):
    user_id = signed_up(session)
    reserved = reserve(session, user_id, "image", 2, NOW)

    with pytest.raises(IntegrityError):
        session.execute(
            update(GenerationReservation)
            .where(GenerationReservation.id == reserved.reservation_id)
            .values(refunded=2, settled=1)
        )
    session.rollback()


def test_concurrent_refunds_of_one_reservation_never_give_back_more_than_it_held(engine):
    user_id = f"user_race_{uuid.uuid4().hex[:8]}"
    with Session(engine) as session, session.begin():
        signed_up(session, user_id=user_id, created_at=datetime.now(UTC) - timedelta(days=3))
        session.execute(
            update(User)
            .where(User.user_id == user_id)
            .values(billing_cycle_end=datetime.now(UTC) + timedelta(days=20))
        )
        # Units held by another reservation: a counter clamped at zero could otherwise hide an excess.
        reserve(session, user_id, "image", 4)
        target = str(reserve(session, user_id, "image", 3).reservation_id)
    barrier = Barrier(12)

    def refund_some(index: int) -> int | str:
        with Session(engine) as session, session.begin():
            barrier.wait()
            try:
                return refund(session, user_id, target, None if index % 2 else 1).refunded
            except ReservationClosed as closed:
                return closed.type

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            outcomes = list(pool.map(refund_some, range(12)))
        given_back = [outcome for outcome in outcomes if isinstance(outcome, int)]
        with Session(engine) as session:
            used = session.scalar(select(User.images_used_in_period).where(User.user_id == user_id))
            stored = session.scalar(
                select(GenerationReservation.refunded).where(GenerationReservation.id == target)
            )
        assert sum(given_back) == 3 == stored
        assert outcomes.count("reservation-closed") == 12 - len(given_back)
        assert used == 4
    finally:
        with Session(engine) as session, session.begin():
            session.execute(delete(User).where(User.user_id == user_id))
