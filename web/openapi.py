"""The OpenAPI document: request/response models declared on views, served at /openapi.json and /docs.

spectree writes what the view decorators say (JSON bodies, query models, success responses); `document`
then adds what a decorator cannot say, so the document describes every route as it really behaves:

- A route declares the statuses particular to it in its `Response`, as codes without a model beside the
  success model: `Response("HTTP_409", HTTP_201=ProjectOut)`. Every status of 400 and above is then
  documented as the one problem+json schema (web/schemas/problem.py); never give a refusal a model.
- What every route of a kind answers is derived here, not declared: /v1 routes 401, 429 (per address
  when unauthenticated) and 503; a route with a path parameter 404; with query parameters 400; with a
  body 413 and 422; a view wrapped in `rate_limited` sends the rate-limit headers with its success, one
  wrapped in `idempotent` reads Idempotency-Key (400, 409 while the first runs, 422 for another body).
- Headers a route reads or sends, bodies that are not JSON, rate limits checked inside the view and
  routes spectree does not see are one entry in ROUTES below, keyed by "METHOD /path" as the document
  spells it; each header is described once in HEADERS. A JSON body sent under another media type names
  it in its schema: `ConfigDict(json_schema_extra={"x-media-type": "application/json-patch+json"})`.

A new `GET /v1/things/{thing_id}` that answers 304 to a current If-None-Match, and 410 when gone:

    @api.validate(resp=Response("HTTP_304", "HTTP_410", HTTP_200=ThingOut), tags=["things"])
    ROUTES: "GET /v1/things/{thing_id}": Route(reads=("If-None-Match",), sends={200: ("ETag",)})

tests/web/test_openapi.py checks that every route of the app is in the document and every ROUTES entry
names a route; tests/web/test_schemathesis.py checks the app against the document.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, jsonify, request
from spectree import SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType

from models.errors import BadRequest, ValidationFailed
from web.errors import PROBLEM_TYPE
from web.openapi_routes import (
    HEADERS,
    HEALTH_SCHEMAS,
    PROBLEM,
    RATE_LIMIT_HEADERS,
    REASONS,
    ROUTES,
    Route,
)
from web.schemas.assets import UploadForm
from web.schemas.problem import Problem

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _refuse_invalid(_req: Any, _resp: Any, error: Exception | None, _instance: Any, *_rest: Any) -> None:
    # Validation failures flow into the one problem+json mapping instead of spectree's own body.
    if error is not None:
        errors: list[Any] = getattr(error, "errors", lambda **_: [])(include_url=False, include_context=False)
        raise ValidationFailed("The request does not match the schema.", errors=errors)
    # spectree leaves a JSON model unread when the body is sent as a form: the view would get None.
    if request.mimetype in FORM_TYPES and _takes_json():
        raise ValidationFailed("The body must be a JSON object sent as application/json.")
    # spectree validates a body it cannot parse (or one that is not JSON) as `{}`, which an all-optional
    # schema accepts: `POST /v1/projects` would create a project from a truncated body.
    if _validated_a_body() and not isinstance(request.get_json(silent=True), dict):
        raise ValidationFailed("The body must be a JSON object sent as application/json.")


def _takes_json() -> bool:
    metadata = api.get_function_metadata(current_app.view_functions[request.endpoint or ""])
    return metadata is not None and metadata.json is not None


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
    validation_error_model=Problem,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="JWT")
        )
    ],
    security={"bearer": []},
)


# Pages, not API: the static folder, the documentation pages and the console's files (web/views/console.py).
UNDOCUMENTED_ENDPOINTS = re.compile(r"^(static|openapi_docs.*|console\.(page|file))$")


def register_openapi(app: Flask) -> None:
    api.register(app)

    @app.get("/openapi.json")
    def openapi_document() -> Any:
        if "openapi" not in current_app.extensions:
            current_app.extensions["openapi"] = document(current_app)
        return jsonify(current_app.extensions["openapi"])

    # The documentation pages read spectree's own document: they get the completed one.
    app.view_functions["openapi_docs"] = openapi_document


def document(app: Flask) -> dict[str, Any]:
    """spectree's document of `app` (in its context) with every status, header and body its routes use."""
    spec = copy.deepcopy(api.spec)
    schemas = spec["components"]["schemas"]
    schemas[PROBLEM] = schemas.pop(api.naming_strategy(Problem))
    schemas["UploadForm"] = _component(UploadForm, schemas)
    schemas.update(HEALTH_SCHEMAS)
    # spectree keeps the document of the first app it served; this app's own routes decide what is in.
    generated, spec["paths"] = spec["paths"], {}
    for method, path, endpoint, view in routes(app):
        route = ROUTES.get(f"{method} {path}", Route())
        operation = generated.get(path, {}).get(method.lower()) or _plain_operation(route, endpoint)
        spec["paths"].setdefault(path, {})[method.lower()] = operation
        for status, content in route.answers.items():
            answer = operation["responses"].setdefault(
                str(status), {"description": HTTPStatus(status).phrase}
            )
            if content:
                answer["content"] = copy.deepcopy(dict(content))
        if route.body is not None:
            operation["requestBody"] = copy.deepcopy(route.body)
        idempotent = hasattr(view, "idempotent")  # web/idempotency.py
        reads = (*route.reads, "Idempotency-Key") if idempotent else route.reads
        parameters = operation.setdefault("parameters", [])
        parameters.extend({"name": name, "in": "header", **_header(name)} for name in reads)
        authenticated = endpoint.startswith("v1.")  # web/api.py: every route of the /v1 blueprint
        if not authenticated:
            operation["security"] = []
        _add_statuses(operation, authenticated, idempotent, _declared_codes(view))
        rate_limited = route.rate_limited or hasattr(view, "rate_limit_class")  # web/ratelimit.py
        _add_headers(operation, route, authenticated, rate_limited, idempotent)
        _refusals_as_problems(operation["responses"])
        _json_body(operation, schemas)
    return spec


def routes(app: Flask) -> Iterator[tuple[str, str, str, Callable[..., Any]]]:
    """Every documented (method, OpenAPI path, endpoint, view) of `app`; HEAD and OPTIONS are implied."""
    for rule in app.url_map.iter_rules():
        if UNDOCUMENTED_ENDPOINTS.match(rule.endpoint):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, path, rule.endpoint, app.view_functions[rule.endpoint]


def _component(model: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/" + model.__name__ + ".{model}")
    for name, nested in schema.pop("$defs", {}).items():
        schemas.setdefault(f"{model.__name__}.{name}", nested)
    return schema


def _plain_operation(route: Route, endpoint: str) -> dict[str, Any]:
    return {"summary": route.summary, "operationId": endpoint, "responses": {}, "tags": ["operations"]}


def _add_statuses(
    operation: dict[str, Any], authenticated: bool, idempotent: bool, declared: set[int]
) -> None:
    """The statuses every route of its kind answers (see the module docstring)."""
    responses, statuses = operation["responses"], set()
    if authenticated:
        statuses |= {401, 429, 503}
    if idempotent:
        statuses |= {400, 409, 422}
    for parameter in operation["parameters"]:
        if parameter["in"] == "path":
            statuses.add(404)
        if parameter["in"] == "query":
            statuses.add(400)
            # Query models (web/schemas.Query) read a blank value (`?type=`) as an absent one.
            parameter["allowEmptyValue"] = not parameter["required"]
    if "requestBody" in operation:
        statuses |= {413, 422}
    elif "422" in responses and 422 not in declared:
        del responses["422"]  # spectree documents its validation status on every route, bodies or not
    for status in sorted(statuses):
        responses.setdefault(str(status), {"description": REASONS[status]})


def _add_headers(
    operation: dict[str, Any], route: Route, authenticated: bool, rate_limited: bool, idempotent: bool
) -> None:
    responses = operation["responses"]
    success = min(int(status) for status in responses)
    sends = {status: list(names) for status, names in route.sends.items()}
    if authenticated:
        # An unauthenticated request counts against its address's window; the refusal says how much is left.
        sends.setdefault(401, []).extend([*RATE_LIMIT_HEADERS, "WWW-Authenticate"])
        sends.setdefault(429, []).extend([*RATE_LIMIT_HEADERS, "Retry-After"])
    if rate_limited:
        sends.setdefault(success, []).extend(RATE_LIMIT_HEADERS)
    if idempotent:
        sends.setdefault(success, []).append("Idempotent-Replayed")
    for status, names in sends.items():
        headers = responses[str(status)].setdefault("headers", {})
        headers.update({name: _header(name) for name in dict.fromkeys(names)})


def _declared_codes(view: Callable[..., Any]) -> set[int]:
    metadata = api.get_function_metadata(view)
    codes = metadata.resp.codes if metadata is not None and metadata.resp is not None else []
    return {int(code.removeprefix("HTTP_")) for code in codes}


def _header(name: str) -> dict[str, Any]:
    header = HEADERS[name]
    return {"description": header.description, "required": header.required, "schema": dict(header.schema)}


def _refusals_as_problems(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        if int(status) >= 400:
            response["content"] = {PROBLEM_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}}
            if response["description"] == HTTPStatus(int(status)).phrase and int(status) in REASONS:
                response["description"] = REASONS[int(status)]


def _json_body(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A JSON body is optional when none of its members is required, and listed under its media type."""
    content = operation.get("requestBody", {}).get("content", {})
    reference = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    body = schemas.get(reference.rsplit("/", 1)[-1])
    if body is None:
        return
    # An empty body is read as `{}` (see _refuse_invalid), so it is enough when no member is required.
    operation["requestBody"]["required"] = bool(body.get("required"))
    media_type = body.get("x-media-type")
    if media_type:
        content[media_type] = content.pop("application/json")
