"""Monthly generation counters: take and give back atomically, roll lapsed cycles, change tiers.

Only models.reservations moves the counters: every unit taken belongs to a reservation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, SQLColumnExpression, case, func, select, update
from sqlalchemy.orm import Session

from models import events
from models.cycles import cycle_containing
from models.errors import GenerationQuotaExceeded, NotFound
from models.plans import normalize_tier
from models.tables import Plan, User

GENERATION_TYPES = ("image", "video")
RESET_BATCH = 500


@dataclass(frozen=True)
class Generations:
    """A user's counter for one type in their current cycle."""

    type: str
    used: int
    limit: int
    cycle_end: datetime

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def percentage(self) -> float:
        return round(100.0 * self.used / self.limit, 2) if self.limit else 100.0


def _columns(type_: str) -> tuple:
    if type_ == "image":
        return User.images_used_in_period, Plan.images_per_period
    if type_ == "video":
        return User.videos_used_in_period, Plan.videos_per_period
    raise ValueError(f"unknown generation type {type_!r}")


def _in_cycle(column: SQLColumnExpression[int], now: datetime) -> ColumnElement[int]:
    """The counter as of `now`: zero once the cycle it belongs to has ended."""
    return case((User.billing_cycle_end <= now, 0), else_=column)


def _rolled(now: datetime, start: datetime, end: datetime) -> dict:
    """Both counters and the cycle dates, moved into the cycle containing `now` if the stored one lapsed."""
    lapsed = User.billing_cycle_end <= now
    return {
        User.images_used_in_period: _in_cycle(User.images_used_in_period, now),
        User.videos_used_in_period: _in_cycle(User.videos_used_in_period, now),
        User.billing_cycle_start: case((lapsed, start), else_=User.billing_cycle_start),
        User.billing_cycle_end: case((lapsed, end), else_=User.billing_cycle_end),
    }


def _current_cycle(session: Session, user_id: str, now: datetime) -> tuple[datetime, datetime]:
    # The signup moment never changes, so reading it apart from the update below opens no race.
    created_at = session.scalar(select(User.created_at).where(User.user_id == user_id))
    if created_at is None:
        raise NotFound("No such user.")
    return cycle_containing(created_at.astimezone(UTC), now)


def take(session: Session, user_id: str, type_: str, count: int, now: datetime | None = None) -> Generations:
    """Take `count` generations of `type_` from the user's monthly quota, or refuse and take nothing.

    Check and increment are one UPDATE: concurrent reservations serialize on the row, and
    PostgreSQL re-evaluates the condition against the newest row, so the limit is never overshot.
    """
    now = now or datetime.now(UTC)
    start, end = _current_cycle(session, user_id, now)
    used, limit = _columns(type_)
    after = _in_cycle(used, now) + count
    values = _rolled(now, start, end) | {used: after}
    row = session.execute(
        update(User)
        .where(User.user_id == user_id, Plan.key == User.tier, after <= limit)
        .values(values)
        .returning(used, limit, User.billing_cycle_end)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        current = usage_of(session, user_id, type_, now)
        refused = GenerationQuotaExceeded(
            f"Reserving {count} {type_} generation(s) would exceed the monthly limit of {current.limit}.",
            generationType=type_,
            requested=count,
            used=current.used,
            limit=current.limit,
            remaining=current.remaining,
            resetsAt=int(current.cycle_end.timestamp() * 1000),
        )
        # The quota comes back when the cycle rolls over: that is when a retry can succeed.
        refused.headers["Retry-After"] = str(max(1, math.ceil((current.cycle_end - now).total_seconds())))
        raise refused
    _expire(session, user_id)
    events.usage_changed(session, user_id)
    return Generations(type_, *row)


def give_back(
    session: Session, user_id: str, type_: str, count: int, now: datetime | None = None
) -> Generations:
    """Give back `count` generations of `type_`; the counter never goes below zero."""
    now = now or datetime.now(UTC)
    start, end = _current_cycle(session, user_id, now)
    used, limit = _columns(type_)
    values = _rolled(now, start, end) | {used: func.greatest(_in_cycle(used, now) - count, 0)}
    row = session.execute(
        update(User)
        .where(User.user_id == user_id, Plan.key == User.tier)
        .values(values)
        .returning(used, limit, User.billing_cycle_end)
        .execution_options(synchronize_session=False)
    ).one()
    _expire(session, user_id)
    events.usage_changed(session, user_id)
    return Generations(type_, *row)


def usage_of(session: Session, user_id: str, type_: str, now: datetime | None = None) -> Generations:
    """The user's counter for `type_` as of `now`, showing a lapsed cycle as already reset."""
    now = now or datetime.now(UTC)
    used, limit = _columns(type_)
    row = session.execute(
        select(_in_cycle(used, now), limit, User.billing_cycle_end, User.created_at)
        .join(Plan, Plan.key == User.tier)
        .where(User.user_id == user_id)
    ).one_or_none()
    if row is None:
        raise NotFound("No such user.")
    cycle_end = row[2] if row[2] > now else cycle_containing(row[3].astimezone(UTC), now)[1]
    return Generations(type_, row[0], row[1], cycle_end)


def reset_expired_cycles(session: Session, now: datetime | None = None) -> int:
    """Zero the counters of every user whose cycle has ended and move them into their current cycle.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so two runs at once split the work, and the
    update re-checks the end date, so a run after a reservation already rolled the row changes nothing.
    """
    now = now or datetime.now(UTC)
    done = 0
    while True:
        due = session.execute(
            select(User.user_id, User.created_at)
            .where(User.billing_cycle_end <= now)
            .order_by(User.user_id)
            .limit(RESET_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not due:
            return done
        for user_id, created_at in due:
            start, end = cycle_containing(created_at.astimezone(UTC), now)
            rolled = session.execute(
                update(User)
                .where(User.user_id == user_id, User.billing_cycle_end <= now)
                .values(_rolled(now, start, end))
                .execution_options(synchronize_session=False)
            )
            # An UPDATE yields a CursorResult (it has rowcount); Session.execute is typed as a plain Result.
            done += cast(CursorResult[Any], rolled).rowcount
        _expire(session, *(user_id for user_id, _ in due))
        events.usage_changed(session, *(user_id for user_id, _ in due))


def set_tier(session: Session, user_id: str, tier: str) -> tuple[str, str]:
    """Move a user to another plan (`paid` means `pro`); an upgrade starts the period's counters afresh.

    Returns the old and the new plan key.
    """
    new = normalize_tier(tier)
    user = session.execute(select(User).where(User.user_id == user_id).with_for_update()).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user {user_id!r}.")
    old = user.tier
    user.tier = new
    if is_upgrade(old, new):
        user.images_used_in_period = 0
        user.videos_used_in_period = 0
    session.flush()
    events.usage_changed(session, user_id)
    return old, new


def is_upgrade(old: str, new: str) -> bool:
    """Whether moving from plan `old` to `new` is an upgrade."""
    rank = {"free": 0, "pro": 1}
    return rank.get(new, 0) > rank.get(old, 0)


def _expire(session: Session, *user_ids: str) -> None:
    # Loaded User objects would otherwise show the counters from before the UPDATE.
    for user_id in user_ids:
        user = session.identity_map.get(session.identity_key(User, user_id))
        if user is not None:
            session.expire(user)
