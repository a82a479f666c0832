"""Bodies for /v1/me."""

from __future__ import annotations

from typing import Literal

from web.schemas import Body


class MeOut(Body):
    user_id: str
    email: str
    tier: str
    storage_used_bytes: int
    storage_quota_bytes: int
    max_upload_bytes: int
    images_used_in_period: int
    videos_used_in_period: int
    billing_cycle_start: int
    billing_cycle_end: int
    created_at: int


class StorageUsageOut(Body):
    used_bytes: int
    quota_bytes: int
    percentage: float
    status: Literal["ok", "warning", "exceeded"]


class GenerationUsageOut(Body):
    used: int
    limit: int
    remaining: int
    percentage: float


class UsageOut(Body):
    storage: StorageUsageOut
    generations: dict[Literal["image", "video"], GenerationUsageOut]
    billing_cycle_start: int
    billing_cycle_end: int
    days_until_reset: int
