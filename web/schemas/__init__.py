"""Request and response bodies: camelCase JSON over snake_case Python, times as epoch milliseconds."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Body(BaseModel):
    """A JSON body with camelCase keys; unknown keys are refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def dump(model: BaseModel) -> dict:
    """A response body with camelCase keys."""
    return model.model_dump(mode="json", by_alias=True)
