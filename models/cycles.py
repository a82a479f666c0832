"""Monthly billing cycles anchored to the day of month the user signed up."""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months(moment: datetime, months: int, anchor_day: int) -> datetime:
    """`moment` moved by whole months, on `anchor_day` clamped to the target month's length."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def cycle_containing(anchor: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) cycle that contains `now`, for cycles anchored at `anchor`."""
    months = max(0, (now.year - anchor.year) * 12 + now.month - anchor.month)
    start = add_months(anchor, months, anchor.day)
    if start > now:
        months -= 1
        start = add_months(anchor, max(months, 0), anchor.day)
    return start, add_months(anchor, months + 1, anchor.day)
