"""Bodies for /console: what the page needs to know before sign-in, and development tokens."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from web.schemas import Body

DEV_USER = "user_local"


class ConsoleConfigOut(Body):
    events_url: str = Field(description="The origin of the live event stream (`GET {eventsUrl}/v1/events`).")
    dev_tokens: bool = Field(description="Whether `POST /console/dev-token` issues tokens (AUTH_MODE=dev).")


class DevTokenIn(Body):
    user_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = DEV_USER


class DevTokenOut(Body):
    token: str
    user_id: str
    expires_at: int
