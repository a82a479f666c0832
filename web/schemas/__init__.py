"""Request and response bodies: camelCase JSON over snake_case Python, times as epoch milliseconds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel


class Body(BaseModel):
    """A JSON body with camelCase keys; unknown keys are refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Query(Body):
    """Query parameters: unknown ones (cache busters) are ignored, blank ones (`?type=`) count as absent."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, values: Any) -> Any:
        return {k: v for k, v in values.items() if v != ""} if isinstance(values, dict) else values


class DocumentedAs:
    """Annotate a field that is read and written as is but documented with `model`'s schema."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(self, _core_schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return handler(self.model.__pydantic_core_schema__)


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def dump(model: BaseModel) -> dict:
    """A response body with camelCase keys."""
    return model.model_dump(mode="json", by_alias=True)
