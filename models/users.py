"""Users: lazy creation on first sight, storage usage and its status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import events
from models.cycles import add_months
from models.tables import Project, User

FIRST_PROJECT_NAME = "Project 01"
EMPTY_CANVAS = {"elements": [], "lastModified": 0}


def ensure_user(session: Session, user_id: str, email: str = "") -> User:
    """The user's row, created with its first project if this is the first time we see them.

    Concurrent first requests race on the primary key: exactly one INSERT wins and only the
    winner creates `Project 01`, so the project exists exactly once.
    """
    user = session.get(User, user_id)
    if user is not None:
        return user
    now = datetime.now(UTC)
    created = session.execute(
        insert(User)
        .values(
            user_id=user_id,
            email=email,
            tier="free",
            billing_cycle_start=now,
            billing_cycle_end=add_months(now, 1, now.day),
        )
        .on_conflict_do_nothing(index_elements=[User.user_id])
        .returning(User.user_id)
    ).scalar_one_or_none()
    if created is not None:
        project = Project(user_id=user_id, name=FIRST_PROJECT_NAME, canvas_state=dict(EMPTY_CANVAS))
        session.add(project)
        session.flush()
        events.project_changed(session, project.id)
    return session.execute(select(User).where(User.user_id == user_id)).scalar_one()


@dataclass(frozen=True)
class StorageUsage:
    used_bytes: int
    quota_bytes: int

    @property
    def percentage(self) -> float:
        return round(100.0 * self.used_bytes / self.quota_bytes, 2) if self.quota_bytes else 100.0

    @property
    def status(self) -> str:
        # Judged on the exact bytes: the rounded percentage reads 100.0 a few bytes short of the quota.
        if self.used_bytes >= self.quota_bytes:
            return "exceeded"
        return "warning" if self.used_bytes * 5 >= self.quota_bytes * 4 else "ok"
