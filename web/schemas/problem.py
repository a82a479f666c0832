"""The one error body: an RFC 9457 problem, sent as application/problem+json by web/errors.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """A refusal or failure; `type` is a stable slug to switch on, other members depend on it."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable machine type, e.g. `quota-exceeded`, `rate-limited`.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str | None = Field(None, description="What happened to this request; absent for bare refusals.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Schema failures (422) or query failures (400)."
    )
    errorCount: int | None = Field(None, description="How many schema failures there were in all.")
    code: str | None = Field(
        None, description="Why media or a source URL was refused (`invalid-media`, 422)."
    )
    retryAfter: int | None = Field(
        None, description="Seconds until a rate-limited request may succeed (429)."
    )
    window: str | None = Field(None, description="The full rate-limit window: perMinute, perHour or perDay.")
    limit: int | None = Field(None, description="The limit that was reached (429, 409 `too-many-projects`).")
