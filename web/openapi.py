"""The OpenAPI document: request/response models declared on views, served at /openapi.json and /docs."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType

from models.errors import BadRequest, ValidationFailed


def _refuse_invalid(_req: Any, _resp: Any, error: Exception | None, _instance: Any, *_rest: Any) -> None:
    # Validation failures flow into the one problem+json mapping instead of spectree's own body.
    if error is not None:
        errors: list[Any] = getattr(error, "errors", lambda **_: [])(include_url=False, include_context=False)
        raise ValidationFailed("The request does not match the schema.", errors=errors)
    # spectree validates a body it cannot parse (or one that is not JSON) as `{}`, which an all-optional
    # schema accepts: `POST /v1/projects` would create a project from a truncated body.
    if _validated_a_body() and not isinstance(request.get_json(silent=True), dict):
        raise ValidationFailed("The body must be a JSON object sent as application/json.")


def _validated_a_body() -> bool:
    if getattr(getattr(request, "context", None), "json", None) is None:
        return False
    # spectree has already read (and Flask cached) a JSON body; any other body is judged by its length.
    return bool(request.get_data(cache=True)) if request.is_json else bool(request.content_length)


def refuse_bad_query(_req: Any, _resp: Any, error: Exception | None, *_rest: Any) -> None:
    """A query that does not match its schema is a 400 (a bad page size or cursor), not a body failure."""
    if error is not None:
        errors: list[Any] = getattr(error, "errors", lambda **_: [])(include_url=False, include_context=False)
        raise BadRequest("The query parameters are not valid.", errors=errors)


api = SpecTree(
    "flask",
    title="Iskra Media API",
    version="1",
    path="docs",
    mode="strict",
    before=_refuse_invalid,
    validation_error_status=422,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="JWT")
        )
    ],
    security={"bearer": []},
)


def register_openapi(app: Flask) -> None:
    api.register(app)

    @app.get("/openapi.json")
    def openapi_document() -> Any:
        return jsonify(_declared_media_types(api.spec))


def _declared_media_types(spec: dict[str, Any]) -> dict[str, Any]:
    """List a request body under the media type its schema declares (`x-media-type`), not under JSON."""
    schemas = spec["components"]["schemas"]
    for operations in spec["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            body = content.get("application/json")
            name = (body or {}).get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            media_type = schemas.get(name, {}).get("x-media-type")
            if media_type:
                content[media_type] = content.pop("application/json")
    return spec
