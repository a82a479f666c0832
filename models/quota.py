"""Storage quota: the one atomic reservation and release of a user's bytes against their plan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, ColumnElement, Update, bindparam, func, select, update
from sqlalchemy.orm import Session

from models import events
from models.errors import QuotaExceeded
from models.tables import Plan, User


def _changing_usage(used_bytes: ColumnElement[int], *where: ColumnElement[bool]) -> Update:
    """UPDATE of a user's storage_used_bytes (params `uid`, `size`) returning the row as changed, which the
    usage event shows without reading it again. Built once: building an ORM statement costs more than
    running it."""
    return (
        update(User)
        .where(User.user_id == bindparam("uid"), *where)
        .values(storage_used_bytes=used_bytes, updated_at=func.now())
        .returning(User)
        .execution_options(populate_existing=True, synchronize_session=False)
    )


_SIZE = bindparam("size", type_=BigInteger)
# One statement: the row lock taken by UPDATE serializes concurrent reservations of the same user,
# and the WHERE re-reads storage_used_bytes after the lock, so two racing uploads can never both fit.
_RESERVE = _changing_usage(
    User.storage_used_bytes + _SIZE,
    User.storage_used_bytes + _SIZE
    <= select(Plan.storage_quota_bytes).where(Plan.key == User.tier).scalar_subquery(),
)
_RELEASE = _changing_usage(func.greatest(User.storage_used_bytes - _SIZE, 0))


def _usage(session: Session, user_id: str) -> tuple[int, int]:
    used, quota = session.execute(
        select(User.storage_used_bytes, Plan.storage_quota_bytes)
        .join(Plan, Plan.key == User.tier)
        .where(User.user_id == user_id)
    ).one()
    return used, quota


@dataclass(frozen=True)
class Room:
    """A user's storage as read at one moment: enough to refuse early what clearly cannot fit."""

    used_bytes: int
    quota_bytes: int

    def check(self, size: int) -> None:
        """Refuse `size` more bytes if they do not fit (the reservation decides for real, under the lock)."""
        if self.used_bytes + size > self.quota_bytes:
            raise self.refusal(size)

    def refusal(self, size: int) -> QuotaExceeded:
        return QuotaExceeded(
            f"Storing {size} more bytes would exceed the plan's {self.quota_bytes} bytes "
            f"({self.used_bytes} used).",
            usedBytes=self.used_bytes,
            quotaBytes=self.quota_bytes,
            requestedBytes=size,
        )


def room_of(user: User, plan: Plan) -> Room:
    """The room `user` has on `plan`, as of their row in this session (no query)."""
    return Room(used_bytes=user.storage_used_bytes, quota_bytes=plan.storage_quota_bytes)


def _refusal(session: Session, user_id: str, size: int) -> QuotaExceeded:
    return Room(*_usage(session, user_id)).refusal(size)


def check_room(session: Session, user_id: str, size: int) -> None:
    """Refuse early, without locking, when `size` clearly cannot fit (the reservation decides for real)."""
    Room(*_usage(session, user_id)).check(size)


def check_not_full(session: Session, user_id: str) -> None:
    """Refuse early, without locking, when the user has no room left at all (for media of unknown size)."""
    used, quota = _usage(session, user_id)
    if used >= quota:
        raise QuotaExceeded(
            f"The storage quota of {quota} bytes is used up ({used} used).", usedBytes=used, quotaBytes=quota
        )


def reserve_storage(session: Session, user_id: str, size: int) -> int:
    """Add `size` bytes to the user's usage if it fits their quota; the new usage, or QuotaExceeded."""
    user = session.execute(_RESERVE, {"uid": user_id, "size": size}).scalar_one_or_none()
    if user is None:
        raise _refusal(session, user_id, size)
    events.usage_now(session, user)
    return user.storage_used_bytes


def release_storage(session: Session, user_id: str, size: int) -> int:
    """Give `size` bytes back (never below zero); the new usage."""
    user = session.execute(_RELEASE, {"uid": user_id, "size": size}).scalar_one()
    events.usage_now(session, user)
    return user.storage_used_bytes
