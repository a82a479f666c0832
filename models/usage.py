"""What a user has used of their plan: storage, monthly generations and the billing cycle."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from models.cycles import cycle_containing
from models.generations import Generations
from models.plans import get_plan
from models.tables import User
from models.users import StorageUsage


@dataclass(frozen=True)
class UsageReport:
    storage: StorageUsage
    images: Generations
    videos: Generations
    cycle_start: datetime
    cycle_end: datetime

    def days_until_reset(self, now: datetime | None = None) -> int:
        seconds = (self.cycle_end - (now or datetime.now(UTC))).total_seconds()
        return max(0, math.ceil(seconds / 86_400))


def usage_report(session: Session, user: User, now: datetime | None = None) -> UsageReport:
    """The user's usage against their plan, as of their row in this session."""
    plan = get_plan(session, user.tier)
    now = now or datetime.now(UTC)
    images, videos = user.images_used_in_period, user.videos_used_in_period
    start, end = user.billing_cycle_start, user.billing_cycle_end
    if now >= end:
        # The cycle ended before the beat task reset it: show what the next reservation will see.
        images, videos = 0, 0
        start, end = cycle_containing(user.created_at.astimezone(UTC), now)
    return UsageReport(
        storage=StorageUsage(used_bytes=user.storage_used_bytes, quota_bytes=plan.storage_quota_bytes),
        images=Generations("image", images, plan.images_per_period, end),
        videos=Generations("video", videos, plan.videos_per_period, end),
        cycle_start=start,
        cycle_end=end,
    )
