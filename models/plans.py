"""The plans the product sells and the legacy tier names that map onto them."""

from __future__ import annotations

from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from models.errors import BadRequest
from models.tables import Plan

MIB = 1024 * 1024

SEED_PLANS = (
    {
        "key": "free",
        "name": "Free",
        "storage_quota_bytes": 500 * MIB,
        "max_upload_bytes": 25 * MIB,
        "images_per_period": 12,
        "videos_per_period": 3,
    },
    {
        "key": "pro",
        "name": "Pro",
        "storage_quota_bytes": 10 * 1024 * MIB,
        "max_upload_bytes": 25 * MIB,
        "images_per_period": 130,
        "videos_per_period": 25,
    },
)

TIER_ALIASES = {"free": "free", "pro": "pro", "paid": "pro"}


def normalize_tier(tier: str) -> str:
    """The plan key for a tier name, accepting the legacy `paid`."""
    try:
        return TIER_ALIASES[tier.strip().lower()]
    except KeyError:
        raise BadRequest(f"Unknown tier {tier!r}; expected one of free, pro") from None


def get_plan(session: Session, key: str) -> Plan:
    """The plan row for a tier: read once per session (a request, a task's transaction), then its copy."""
    plan = session.get(Plan, normalize_tier(key))
    if plan is None:
        raise NoResultFound(f"no plan {key!r}")
    return plan
