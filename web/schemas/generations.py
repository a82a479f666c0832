"""Bodies for /v1/me/generations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from web.schemas import Body

# One request reserves at most a batch the canvas offers at once (it generates up to 4 variations).
MAX_GENERATIONS_PER_REQUEST = 10


class GenerationRequest(Body):
    type: Literal["image", "video"]
    count: int = Field(default=1, ge=1, le=MAX_GENERATIONS_PER_REQUEST, strict=True)


class GenerationsOut(Body):
    type: Literal["image", "video"]
    used: int
    limit: int
    remaining: int
    percentage: float
    resets_at: int
