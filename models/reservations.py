"""Generation reservations: open → settled | refunded | expired, and the only way the monthly counters move.

A reservation takes units from the user's counter for its billing cycle. Each unit then leaves it once:
settled by an import of what was generated (kept for good), or refunded (given back to the counter).
Transitions lock the reservation's row first, so concurrent refunds and imports of one reservation
serialize and each sees what the previous one left; the table's check constraint backs this up.

A reservation belongs to the cycle it was taken from: once that cycle has ended its counter was reset,
so a refund gives nothing back to the new cycle's counter and is refused as closed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.errors import NotFound, ReservationClosed, ValidationFailed
from models.generations import Generations, give_back, take
from models.tables import GenerationReservation

RESERVATION_TTL = timedelta(hours=1)


class ReservationStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    REFUNDED = "refunded"
    # Never stored: an open reservation past its expiry reads as expired and allows no transition.
    EXPIRED = "expired"


@dataclass(frozen=True)
class Reserved:
    reservation_id: uuid.UUID
    expires_at: datetime
    generations: Generations


@dataclass(frozen=True)
class Refunded:
    reservation_id: uuid.UUID
    refunded: int
    generations: Generations


def held(reservation: GenerationReservation) -> int:
    """Units neither settled nor refunded yet."""
    return reservation.count - reservation.refunded - reservation.settled


def status_of(reservation: GenerationReservation, now: datetime) -> ReservationStatus:
    """The reservation's state as of `now`."""
    if reservation.status != ReservationStatus.OPEN:
        return ReservationStatus(reservation.status)
    return ReservationStatus.EXPIRED if reservation.expires_at <= now else ReservationStatus.OPEN


def reserve(session: Session, user_id: str, type_: str, count: int, now: datetime | None = None) -> Reserved:
    """Take `count` generations from the monthly quota under a new reservation, or refuse and take nothing."""
    now = now or datetime.now(UTC)
    generations = take(session, user_id, type_, count, now)
    reservation = GenerationReservation(
        id=uuid.uuid4(),
        user_id=user_id,
        type=type_,
        count=count,
        status=ReservationStatus.OPEN.value,
        created_at=now,
        expires_at=now + RESERVATION_TTL,
        cycle_end=generations.cycle_end,
    )
    session.add(reservation)
    session.flush()
    return Reserved(reservation.id, reservation.expires_at, generations)


def refund(
    session: Session,
    user_id: str,
    reservation_id: str,
    count: int | None = None,
    type_: str | None = None,
    now: datetime | None = None,
) -> Refunded:
    """Give back up to `count` (default: all) of what the reservation still holds to the monthly counter."""
    now = now or datetime.now(UTC)
    reservation = _lock_open(session, user_id, reservation_id, type_, now)
    if reservation.cycle_end <= now:
        raise ReservationClosed(
            "The reservation's billing cycle has ended and its counter was reset; nothing is given back.",
            reservationStatus=ReservationStatus.EXPIRED.value,
        )
    units = held(reservation) if count is None else min(count, held(reservation))
    reservation.refunded += units
    _close_if_empty(reservation)
    session.flush()
    generations = give_back(session, user_id, reservation.type, units, now)
    return Refunded(reservation.id, units, generations)


def settle(
    session: Session, user_id: str, reservation_id: str, type_: str, now: datetime | None = None
) -> None:
    """Settle one unit of the reservation for media of `type_`: it is kept and can no longer be refunded."""
    now = now or datetime.now(UTC)
    reservation = _lock_open(session, user_id, reservation_id, type_, now)
    reservation.settled += 1
    _close_if_empty(reservation)
    session.flush()


def _lock_open(
    session: Session, user_id: str, reservation_id: str, type_: str | None, now: datetime
) -> GenerationReservation:
    """The user's reservation, row-locked, of `type_` if given, with units left and not expired."""
    try:
        key = uuid.UUID(reservation_id)
    except ValueError:
        raise NotFound("Reservation not found.") from None
    # The lock makes a concurrent refund or settlement wait and then read what this one left.
    reservation = session.execute(
        select(GenerationReservation)
        .where(GenerationReservation.id == key, GenerationReservation.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if reservation is None:
        raise NotFound("Reservation not found.")
    if type_ is not None and type_ != reservation.type:
        raise ValidationFailed(
            f"The reservation is for {reservation.type} generations, not {type_}.",
            reservationType=reservation.type,
        )
    status = status_of(reservation, now)
    if status != ReservationStatus.OPEN:
        raise ReservationClosed(
            f"The reservation is {status.value}; it holds nothing.", reservationStatus=status.value
        )
    return reservation


def _close_if_empty(reservation: GenerationReservation) -> None:
    # Closed as settled if any unit was kept, else as refunded: either way nothing is left to move.
    if held(reservation) == 0:
        reservation.status = (
            ReservationStatus.SETTLED if reservation.settled else ReservationStatus.REFUNDED
        ).value
