"""Bodies for /v1/me/generations."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from web.schemas import Body

# One request reserves at most a batch the canvas offers at once (it generates up to 4 variations).
MAX_GENERATIONS_PER_REQUEST = 10
ReservationId = Annotated[str, Field(min_length=1, max_length=64)]


class GenerationRequest(Body):
    type: Literal["image", "video"]
    count: int = Field(default=1, ge=1, le=MAX_GENERATIONS_PER_REQUEST, strict=True)


class RefundRequest(Body):
    """Give back what a reservation still holds: all of it, or `count` (a larger count is clamped)."""

    reservation_id: ReservationId
    count: int | None = Field(default=None, ge=1, strict=True)
    # Optional; when sent it must be the reservation's type.
    type: Literal["image", "video"] | None = None


class GenerationsOut(Body):
    type: Literal["image", "video"]
    used: int
    limit: int
    remaining: int
    percentage: float
    resets_at: int


class ReservationOut(GenerationsOut):
    reservation_id: str
    expires_at: int


class RefundOut(GenerationsOut):
    reservation_id: str
    refunded: int
