"""PATCH /v1/projects/{id}/state: incremental autosaves as JSON Patch, stored exactly as a full save would."""

from __future__ import annotations

import copy
import itertools
import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import jsonpatch
import pytest
from sqlalchemy import text

from core.taskqueue import RENDER_PROJECT_THUMBNAIL
from models.users import ensure_user
from tests.queues import take
from tests.web.test_projects import add_asset, canvas, element, put_state

PATCH_TYPE = "application/json-patch+json"


@pytest.fixture
def owner(client, auth_header):
    """A user seen once (so they have Project 01): (headers, user id, Project 01's id)."""
    headers = auth_header("user_patcher")
    first = client.get("/v1/projects", headers=headers).json["items"][0]
    return headers, "user_patcher", first["id"]


def patch_state(client, headers, project_id, operations, if_match: str | None = '"0"', **extra):
    body = operations if isinstance(operations, bytes) else json.dumps(operations).encode()
    sent = {**headers, "Content-Type": PATCH_TYPE, **extra}
    if if_match is not None:
        sent["If-Match"] = if_match
    return client.patch(f"/v1/projects/{project_id}/state", data=body, headers=sent)


def read(client, headers, project_id) -> tuple[dict, str]:
    """The project and the revision its read's ETag names, as the `"<revision>"` tag a save answers."""
    response = client.get(f"/v1/projects/{project_id}", headers=headers)
    revision = response.headers["ETag"].strip('"').split("-", 1)[0]
    assert revision == str(response.json["revision"])
    return response.json, f'"{revision}"'


def stored_equal(session, first_id: str, second_id: str) -> bool:
    """Whether two projects hold equal canvases, compared as PostgreSQL's jsonb values."""
    return session.execute(
        text(
            "SELECT a.canvas_state = b.canvas_state FROM projects a, projects b WHERE a.id = :a AND b.id = :b"
        ),
        {"a": first_id, "b": second_id},
    ).scalar_one()


def test_a_patch_saves_the_change_bumps_the_revision_and_returns_the_new_etag(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a"), element("t", "text")), **{"If-Match": '"0"'})

    response = patch_state(client, headers, project_id, [
        {"op": "replace", "path": "/elements/0/transform/x", "value": 40.5},
        {"op": "add", "path": "/elements/-", "value": element("v", "video")},
    ], if_match='"1"')  # fmt: skip

    assert response.status_code == 200, response.json
    assert response.headers["ETag"] == '"2"'
    assert (response.json["revision"], response.json["imageCount"], response.json["videoCount"]) == (2, 1, 1)
    state, etag = read(client, headers, project_id)
    assert etag == '"2"' and state["revision"] == 2
    assert state["canvasState"]["elements"][0]["transform"]["x"] == 40.5
    assert state["lastSavedAt"] == response.json["lastSavedAt"]


def test_the_stored_canvas_equals_what_a_full_save_of_the_same_state_stores(client, owner, session):
    headers, user_id, patched_id = owner
    put_id = client.post("/v1/projects", headers=headers).json["id"]
    asset = add_asset(session, user_id)
    start = canvas(element("a", assetId=asset, width=10.0), element("b", "text"), viewport={"x": 0, "y": 0,
                   "scale": 1.0})  # fmt: skip
    final = copy.deepcopy(start)
    final["elements"][0]["transform"] |= {"x": 1e-7, "y": 123456789.125, "rotation": 0.1 + 0.2}
    final["elements"].insert(0, element("c", "shape", zIndex=-1, originalFalUrl="https://f/ü.png"))
    final |= {"backgroundColor": "#abcdef", "lastModified": 1_733_000_000_000}
    for project_id in (patched_id, put_id):
        put_state(client, headers, project_id, start)

    patched = patch_state(client, headers, patched_id, jsonpatch.make_patch(start, final).patch, '"1"')
    full = put_state(client, headers, put_id, final, **{"If-Match": '"1"'})

    assert patched.status_code == full.status_code == 200
    assert patched.headers["ETag"] == full.headers["ETag"]
    keys = ("revision", "imageCount", "videoCount")
    assert [patched.json[k] for k in keys] == [full.json[k] for k in keys] == [2, 1, 0]
    assert stored_equal(session, patched_id, put_id)
    assert read(client, headers, patched_id)[0]["canvasState"] == final


@pytest.mark.parametrize("if_match", [None, "*"])
def test_without_if_match_or_with_a_star_a_patch_is_428_and_stores_nothing(client, owner, if_match):
    headers, _, project_id = owner

    response = patch_state(client, headers, project_id, [], if_match=if_match)

    assert response.status_code == 428
    assert (response.mimetype, response.json["type"]) == ("application/problem+json", "precondition-required")
    assert read(client, headers, project_id)[1] == '"0"'


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/merge-patch+json"])
def test_a_patch_sent_as_another_media_type_is_415_naming_the_one_accepted(client, owner, content_type):
    headers, _, project_id = owner

    response = patch_state(client, headers, project_id, [], **{"Content-Type": content_type})

    assert response.status_code == 415
    assert response.json["type"] == "unsupported-media-type"
    assert response.headers["Accept-Patch"] == PATCH_TYPE


def test_a_patch_against_a_stale_revision_is_412_with_the_current_etag(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a")))

    response = patch_state(client, headers, project_id, [{"op": "remove", "path": "/elements/0"}], '"0"')

    assert response.status_code == 412
    assert (response.json["type"], response.json["currentRevision"]) == ("revision-mismatch", 1)
    assert response.headers["ETag"] == '"1"'
    assert len(read(client, headers, project_id)[0]["canvasState"]["elements"]) == 1


def test_a_failed_test_operation_or_a_missing_path_is_409_and_stores_nothing(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a")))

    failed_test = patch_state(client, headers, project_id, [
        {"op": "test", "path": "/elements/0/id", "value": "b"},
        {"op": "remove", "path": "/elements/0"},
    ], '"1"')  # fmt: skip
    missing = patch_state(client, headers, project_id, [
        {"op": "replace", "path": "/elements/3/transform/x", "value": 1},
    ], '"1"')  # fmt: skip

    assert failed_test.status_code == missing.status_code == 409
    assert failed_test.json["type"] == missing.json["type"] == "patch-conflict"
    assert read(client, headers, project_id)[1] == '"1"'


@pytest.mark.parametrize("operations", [
    [{"op": "add", "path": "/elements/-", "value": element("a")}],
    [{"op": "add", "path": "/elements/0/surprise", "value": 1}],
    [{"op": "replace", "path": "/backgroundColor", "value": "red"}],
    [{"op": "add", "path": "/elements/-", "value": element("x", assetId=str(uuid.uuid4()))}],
])  # fmt: skip
def test_a_patch_whose_result_breaks_the_schema_or_ownership_is_422_and_stores_nothing(
    client, owner, operations
):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a"), backgroundColor="#000"))

    response = patch_state(client, headers, project_id, operations, '"1"')

    assert (response.status_code, response.json["type"]) == (422, "validation-failed")
    assert read(client, headers, project_id)[1] == '"1"'


def test_the_element_limit_holds_for_the_patched_canvas(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(*(element(f"e{n}") for n in range(1000))))

    response = patch_state(client, headers, project_id, [
        {"op": "add", "path": "/elements/-", "value": element("one-too-many")}], '"1"')  # fmt: skip

    assert response.status_code == 422
    assert "1000" in response.json["detail"]


def test_a_small_patch_whose_result_outgrows_the_byte_cap_is_413(client, owner):
    headers, _, project_id = owner
    url = "https://v3.fal.media/" + "x" * 2000
    put_state(
        client, headers, project_id, canvas(*(element(f"e{n}", originalFalUrl=url) for n in range(300)))
    )
    copies = [{"op": "copy", "from": "/elements", "path": f"/copy{n}"} for n in range(3)]

    response = patch_state(client, headers, project_id, copies, '"1"')

    assert (response.status_code, response.json["type"]) == (413, "payload-too-large")
    assert read(client, headers, project_id)[1] == '"1"'


@pytest.mark.parametrize(("body", "status"), [
    (b'[{"op": "replace"', 400), (b"\xff\xfe", 400), (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"op": "replace", "path": "/lastModified", "value": 2}', 422), (b'[{"op": "shove", "path": ""}]', 422),
])  # fmt: skip
def test_a_body_that_is_not_a_json_patch_is_a_client_problem(client, owner, body, status):
    headers, _, project_id = owner

    response = patch_state(client, headers, project_id, body)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_a_patch_body_over_the_cap_is_413_before_parsing(client, owner, settings):
    headers, _, project_id = owner

    response = patch_state(client, headers, project_id, b"[" + b" " * settings.max_project_state_bytes + b"]")

    assert (response.status_code, response.json["type"]) == (413, "payload-too-large")


def test_someone_elses_project_is_the_same_404_as_a_missing_one(client, owner, auth_header, session):
    _, _, project_id = owner
    stranger = auth_header("user_patch_stranger")
    ensure_user(session, "user_patch_stranger")
    session.commit()

    theirs = patch_state(client, stranger, project_id, [])
    missing = patch_state(client, stranger, str(uuid.uuid4()), [])
    nonsense = patch_state(client, stranger, "not-a-uuid", [])

    assert theirs.status_code == missing.status_code == nonsense.status_code == 404
    assert theirs.json == missing.json == nonsense.json


def test_patches_and_full_saves_share_one_debounced_thumbnail_render(client, owner, redis_client, settings):
    headers, _, project_id = owner
    etag = '"0"'

    for n in range(4):
        if n % 2:
            response = patch_state(client, headers, project_id, [
                {"op": "replace", "path": "/lastModified", "value": n}], etag)  # fmt: skip
        else:
            response = put_state(client, headers, project_id, canvas(element(f"e{n}")), **{"If-Match": etag})
        assert response.status_code == 200
        etag = response.headers["ETag"]

    assert len(take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)) == 1


def test_a_patch_alone_schedules_the_thumbnail_render(client, owner, redis_client, settings):
    headers, _, project_id = owner

    patch_state(client, headers, project_id, [{"op": "add", "path": "/elements/-", "value": element("a")}])

    assert len(take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)) == 1


def recorded_session(start: dict, asset_ids: list[str], steps: int, seed: int = 19) -> list[dict]:
    """Canvas states of an editing session: mostly one-element moves, some additions, deletions, reorders."""
    rng, states, serial = random.Random(seed), [start], 0
    for step in range(steps):
        state = copy.deepcopy(states[-1])
        elements, roll = state["elements"], rng.random()
        if roll < 0.08 or not elements:
            serial += 1
            new = element(f"new-{serial}", rng.choice(["image", "text", "shape"]), zIndex=len(elements))
            if new["type"] == "image":
                new |= {
                    "assetId": rng.choice(asset_ids),
                    "assetType": "image",
                    "width": 512.0,
                    "height": 384.0,
                }
            elements.insert(rng.randint(0, len(elements)), new)
        elif roll < 0.14:
            elements.pop(rng.randrange(len(elements)))
        elif roll < 0.17:
            elements.append(elements.pop(rng.randrange(len(elements))))  # bring to front
        elif roll < 0.20:
            state["viewport"] = {"x": rng.uniform(-500, 500), "y": rng.uniform(-500, 500), "scale": 0.5}
        else:
            moved = rng.choice(elements)["transform"]
            moved["x"] = round(moved["x"] + rng.uniform(-40, 40), 2)
            moved["y"] = round(moved["y"] + rng.uniform(-40, 40), 2)
        state["lastModified"] = 1_733_000_000_000 + step
        states.append(state)
    return states


def test_a_replayed_editing_session_ends_with_exactly_the_state_a_full_save_stores(client, owner, session):
    headers, user_id, project_id = owner
    put_id = client.post("/v1/projects", headers=headers).json["id"]
    asset_ids = [add_asset(session, user_id) for _ in range(5)]
    start = canvas(*(element(f"e{n}", "image", assetId=asset_ids[n % 5], assetType="image",
                             width=512.0, height=384.0, zIndex=n) for n in range(40)),
                   backgroundColor="#f4f4f5", viewport={"x": 0, "y": 0, "scale": 1})  # fmt: skip
    states = recorded_session(start, asset_ids, steps=300)
    etag = put_state(client, headers, project_id, start).headers["ETag"]
    sizes = []

    for step, (previous, following) in enumerate(itertools.pairwise(states)):
        if step == 150:  # renamed mid-session: the canvas and its revision are untouched
            renamed = client.patch(f"/v1/projects/{project_id}", headers=headers, json={"name": "Moodboard"})
            assert renamed.headers["ETag"] == etag
        body = jsonpatch.make_patch(previous, following).to_string().encode()
        sizes.append(len(body))
        response = patch_state(client, headers, project_id, body, etag)
        assert response.status_code == 200, (step, response.json)
        etag = response.headers["ETag"]
    full = put_state(client, headers, put_id, states[-1])

    final, final_etag = read(client, headers, project_id)
    assert final["canvasState"] == states[-1] and final["name"] == "Moodboard"
    assert (final_etag, final["revision"]) == ('"301"', 301)
    assert (final["imageCount"], final["videoCount"]) == (full.json["imageCount"], full.json["videoCount"])
    assert stored_equal(session, project_id, put_id)
    assert max(sizes) < 2048


def test_concurrent_patches_and_full_saves_lose_no_acknowledged_change(committed_app, auth_header):
    headers = auth_header("user_patch_racer")
    writers, saves_each = 4, 12
    with committed_app.test_client() as client:
        project_id = client.get("/v1/projects", headers=headers).json["items"][0]["id"]
        put_state(client, headers, project_id, canvas(*(element(f"w{n}") for n in range(writers))))
    barrier = Barrier(writers)

    def writer(number: int) -> tuple[float, int, int]:
        """Move its own element `saves_each` times (odd writers by full save); (last acked x, 200s, 412s)."""
        acked, conflicts = 0, 0
        with committed_app.test_client() as client:
            barrier.wait()
            while acked < saves_each:
                state, etag = read(client, headers, project_id)
                index = [e["id"] for e in state["canvasState"]["elements"]].index(f"w{number}")
                x = float(acked + 1)
                if number % 2:
                    change = state["canvasState"]
                    change["elements"][index]["transform"]["x"] = x
                    response = put_state(client, headers, project_id, change, **{"If-Match": etag})
                else:
                    path = f"/elements/{index}"
                    response = patch_state(client, headers, project_id, [
                        {"op": "test", "path": f"{path}/id", "value": f"w{number}"},
                        {"op": "replace", "path": f"{path}/transform/x", "value": x}], etag)  # fmt: skip
                assert response.status_code in (200, 412), response.json
                acked += response.status_code == 200
                conflicts += response.status_code == 412
        return x, acked, conflicts

    with ThreadPoolExecutor(max_workers=writers) as pool:
        outcomes = list(pool.map(writer, range(writers)))

    with committed_app.test_client() as client:
        final, _ = read(client, headers, project_id)
    xs = {e["id"]: e["transform"]["x"] for e in final["canvasState"]["elements"]}
    assert xs == {f"w{n}": float(saves_each) for n in range(writers)}
    assert final["revision"] == 1 + sum(acked for _, acked, _ in outcomes)


def test_the_openapi_document_describes_the_patch_route(client):
    spec = client.get("/openapi.json").json

    operation = spec["paths"]["/v1/projects/{project_id}/state"]["patch"]

    assert list(operation["requestBody"]["content"]) == [PATCH_TYPE]
    assert {"200", "400", "404", "409", "412", "413", "415", "422", "428"} <= set(operation["responses"])
    assert any(
        p["in"] == "header" and p["name"] == "If-Match" and p["required"] for p in operation["parameters"]
    )
    assert list(spec["paths"]["/v1/projects/{project_id}/state"]["put"]["requestBody"]["content"]) == [
        "application/json"
    ]


@pytest.mark.parametrize("number", [b"1e-20000", b"0." + b"0" * 17_000 + b"1"])
def test_a_patch_carrying_a_number_postgresql_cannot_hold_is_422_and_stores_nothing(client, owner, number):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("a")))
    body = b'[{"op": "replace", "path": "/elements/0/transform/x", "value": ' + number + b"}]"

    response = patch_state(client, headers, project_id, body, '"1"')

    assert (response.status_code, response.json["type"]) == (422, "validation-failed")
    assert read(client, headers, project_id)[0]["revision"] == 1
