"""The app against its own OpenAPI document: generated requests to every operation, on real PostgreSQL."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import hypothesis
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from core.settings import Settings
from tests.web.uploading import upload
from web.auth import make_dev_token

pytestmark = pytest.mark.contract

# What the document promises: no 5xx, every status, content type, header and body as it says, a request
# the schema calls invalid never accepted, no method it does not list. (`ignored_auth` expects 401 or 403
# without a token; past the per-address window the answer is the documented 429.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
]


def user_of(case: schemathesis.Case) -> str:
    """One user per operation, so one operation's rate-limit windows and projects leave the others alone."""
    return "contract-" + re.sub(r"[^A-Za-z0-9]+", "-", case.operation.label).strip("-")


@pytest.fixture
def contract_schema(app: Flask, settings: Settings) -> OpenApiSchema:
    """The document the app serves, sent to the app itself (WSGI), each operation as its own user."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)

    @schema.auth(refresh_interval=None)
    class DevToken:
        def get(self, case: schemathesis.Case, _ctx: object) -> str:
            return make_dev_token(settings, user_of(case))

        def set(self, case: schemathesis.Case, token: str, _ctx: object) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    return schema


def a_project(client: FlaskClient, headers: dict[str, str]) -> str:
    return client.post("/v1/projects", json={}, headers=headers).json["id"]


def an_asset(client: FlaskClient, headers: dict[str, str]) -> str:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(png, "PNG")
    return upload(client, headers, png.getvalue(), filename="dot.png", file_type="image/png").json["id"]


def a_download_token(client: FlaskClient, headers: dict[str, str]) -> str:
    asset = client.get(f"/v1/assets/{an_asset(client, headers)}", headers=headers).json
    return asset["urls"]["original"].rsplit("/", 1)[1]


# Random ids only ever reach the 404 branch; these make a real one of the caller's for a path parameter
# (once per operation: uploads are rate limited and projects counted).
REAL_PATH_PARAMETERS: dict[str, Callable[[FlaskClient, dict[str, str]], str]] = {
    "project_id": a_project,
    "asset_id": an_asset,
    "token": a_download_token,
}


@pytest.fixture
def real_ids() -> dict[tuple[str, str], str]:
    """(user, path parameter) -> the real id made for it."""
    return {}


schema = schemathesis.pytest.from_fixture("contract_schema")


@pytest.fixture(autouse=True)
def _node_id_schemathesis_renames(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 names each operation's subtest through `node._nodeid`, gone in pytest 9.2.
    request.node._nodeid = request.node.nodeid


@schema.parametrize()
@schema.given(data=st.data())
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    # The app and client fixtures are shared by every example of the run, on purpose (one rolled-back
    # connection); requests to a real database are slower than Hypothesis expects of a test.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_its_document_says(
    case: schemathesis.Case,
    data: st.DataObject,
    client: FlaskClient,
    settings: Settings,
    real_ids: dict[tuple[str, str], str],
) -> None:
    headers = {"Authorization": f"Bearer {make_dev_token(settings, user_of(case))}"}
    for name in case.path_parameters or {}:
        if name in REAL_PATH_PARAMETERS and data.draw(st.booleans(), label=f"a real {name}"):
            if (user_of(case), name) not in real_ids:
                real_ids[user_of(case), name] = REAL_PATH_PARAMETERS[name](client, headers)
            case.path_parameters[name] = real_ids[user_of(case), name]
    if "If-Match" in (case.headers or {}) and data.draw(st.booleans(), label="the current ETag"):
        # A random If-Match never names a revision: send the real one, so changes get through.
        project = f"/v1/projects/{case.path_parameters['project_id']}"
        case.headers["If-Match"] = client.get(project, headers=headers).headers.get("ETag", "*")
    # Buffered: the body is read and the response closed (a streamed download would leak its file).
    case.call_and_validate(checks=CHECKS, buffered=True)
