"""The shape of /openapi.json: every route in it, with its refusals, headers and bodies as they really are."""

from __future__ import annotations

import pytest

from web.errors import PROBLEM_TYPE
from web.openapi import ROUTES, routes

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RATE_LIMIT_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Period", "RateLimit-Policy"}


@pytest.fixture
def document(client):
    return client.get("/openapi.json").json


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_route_of_the_app_is_in_the_document_and_nothing_else(app, document):
    served = {f"{method} {path}" for method, path, _, _ in routes(app)}

    assert {name for name, _ in operations(document)} == served
    assert {"GET /files/{token}", "GET /livez", "GET /readyz", "GET /metrics"} <= served


def test_every_entry_of_the_route_table_names_a_route(document):
    assert set(ROUTES) <= {name for name, _ in operations(document)}


def test_every_refusal_is_the_one_problem_schema_as_problem_json(document):
    refusals = [
        (name, status, response)
        for name, operation in operations(document)
        for status, response in operation["responses"].items()
        if int(status) >= 400
    ]

    assert len(refusals) > 50
    for name, status, response in refusals:
        assert response["content"] == {PROBLEM_TYPE: {"schema": PROBLEM_REF}}, (name, status)
    assert not [key for key in document["components"]["schemas"] if key.startswith("ValidationError")]


def test_the_problem_schema_names_its_members_and_allows_more(document):
    problem = document["components"]["schemas"]["Problem"]

    assert set(problem["required"]) == {"type", "title", "status"}
    assert {"detail", "errors", "code", "retryAfter"} <= set(problem["properties"])
    assert problem["additionalProperties"] is True


def test_every_v1_operation_documents_401_429_and_503_with_their_headers(document):
    for name, operation in operations(document):
        # A direct upload's ticket endpoint carries its credential in the path (docs/api.md).
        if " /v1/" not in name or " /v1/uploads/t/" in name:
            assert operation["security"] == [], name
            continue
        responses = operation["responses"]
        assert {"401", "429", "503"} <= set(responses), name
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert responses["429"]["headers"]["Retry-After"]["required"] is True
        assert set(responses["429"]["headers"]) >= RATE_LIMIT_HEADERS, name
        assert "security" not in operation, name  # the document's default: a bearer token


def test_path_parameters_document_404_query_parameters_400_and_bodies_413_and_422(document):
    for name, operation in operations(document):
        places = {parameter["in"] for parameter in operation.get("parameters", [])}
        statuses = set(operation["responses"])
        assert ("path" in places) <= ("404" in statuses), name
        assert ("query" in places) <= ("400" in statuses), name
        assert ("requestBody" in operation) == ({"413", "422"} <= statuses), name


def test_routes_declare_their_own_refusals(document):
    paths = document["paths"]

    assert {"400", "413", "415", "422", "507"} <= set(paths["/v1/assets"]["post"]["responses"])
    assert "409" in paths["/v1/projects"]["post"]["responses"]
    assert "412" in paths["/v1/projects/{project_id}/state"]["put"]["responses"]
    assert {"404", "409", "507"} <= set(paths["/v1/assets/import"]["post"]["responses"])
    assert {"404", "409"} <= set(paths["/v1/me/generations/refund"]["post"]["responses"])
    assert "WWW-Authenticate" in paths["/metrics"]["get"]["responses"]["401"]["headers"]
    assert "422" not in paths["/v1/me"]["get"]["responses"]


def test_the_upload_body_is_a_multipart_form_with_a_binary_file(document):
    body = document["paths"]["/v1/assets"]["post"]["requestBody"]
    form = body["content"]["multipart/form-data"]
    schema = document["components"]["schemas"][form["schema"]["$ref"].rsplit("/", 1)[1]]

    assert body["required"] is True
    assert schema["required"] == ["file"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert {"metadata", "width", "height", "duration"} <= set(schema["properties"])
    assert form["encoding"]["metadata"]["contentType"] == "application/json"


def test_the_canvas_state_is_typed_in_and_out(document):
    schemas = document["components"]["schemas"]
    sent = document["paths"]["/v1/projects/{project_id}/state"]["put"]["requestBody"]["content"]
    read = document["paths"]["/v1/projects/{project_id}"]["get"]["responses"]["200"]["content"]
    project = schemas[read["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]

    assert sent["application/json"]["schema"]["$ref"].rsplit("/", 1)[1].startswith("CanvasState")
    assert project["properties"]["canvasState"]["required"] == ["lastModified", "elements"]
    assert project["properties"]["canvasState"]["additionalProperties"] is False


def test_the_headers_clients_read_and_send_are_documented(document):
    paths = document["paths"]
    save = paths["/v1/projects/{project_id}/state"]["put"]

    assert {"name": "If-Match", "in": "header"}.items() <= save["parameters"][-1].items()
    assert "ETag" in save["responses"]["200"]["headers"]
    assert "ETag" in paths["/v1/projects/{project_id}"]["get"]["responses"]["200"]["headers"]
    assert {"ETag", "Location"} <= set(paths["/v1/projects"]["post"]["responses"]["201"]["headers"])
    assert "Location" in paths["/v1/assets"]["post"]["responses"]["201"]["headers"]
    assert "Location" in paths["/v1/assets/import"]["post"]["responses"]["202"]["headers"]


def test_rate_limited_routes_send_their_budget_with_a_success(document):
    paths = document["paths"]

    assert set(paths["/v1/assets"]["post"]["responses"]["201"]["headers"]) >= RATE_LIMIT_HEADERS
    assert set(paths["/v1/assets/import"]["post"]["responses"]["202"]["headers"]) >= RATE_LIMIT_HEADERS
    assert (
        set(paths["/v1/me/generations/reserve"]["post"]["responses"]["200"]["headers"]) >= RATE_LIMIT_HEADERS
    )
    assert "headers" not in paths["/v1/me"]["get"]["responses"]["200"]


def test_downloads_are_described_with_ranges_and_conditional_answers(document):
    download = document["paths"]["/files/{token}"]["get"]

    assert set(download["responses"]) == {"200", "206", "304", "403", "404", "416", "503"}
    assert download["responses"]["200"]["content"]["*/*"]["schema"]["format"] == "binary"
    assert {"Range", "If-None-Match"} <= {parameter["name"] for parameter in download["parameters"]}


def test_an_optional_json_body_is_documented_as_optional(document):
    paths = document["paths"]

    assert paths["/v1/projects"]["post"]["requestBody"]["required"] is False
    assert paths["/v1/assets/import"]["post"]["requestBody"]["required"] is True


def test_the_documentation_pages_read_the_same_document(client, document):
    assert client.get("/docs/openapi.json").json == document


def test_idempotent_routes_read_the_key_and_document_its_refusals(document):
    idempotent = {
        name
        for name, operation in operations(document)
        if "Idempotency-Key" in {parameter["name"] for parameter in operation.get("parameters", [])}
    }

    assert idempotent == {
        "POST /v1/assets",
        "POST /v1/assets/import",
        "POST /v1/projects",
        "POST /v1/me/generations/reserve",
        "POST /v1/uploads/s3/multipart/{upload_id}/complete",
        "POST /v1/uploads/t/{ticket}/s3/multipart/{upload_id}/complete",
    }
    for name, operation in operations(document):
        if name in idempotent:
            assert {"400", "409", "422"} <= set(operation["responses"]), name


def test_conditional_reads_document_304_and_if_none_match(document):
    for path in ("/v1/assets/{asset_id}", "/v1/projects/{project_id}"):
        read = document["paths"][path]["get"]

        assert "304" in read["responses"], path
        assert "If-None-Match" in {parameter["name"] for parameter in read["parameters"]}, path
        assert {"ETag", "Cache-Control"} <= set(read["responses"]["200"]["headers"]), path
