"""/v1/projects: list, create, read, autosave with If-Match, rename, delete, thumbnail scheduling."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from threading import Barrier

import pytest
from sqlalchemy import func, select, text

from core.taskqueue import RENDER_PROJECT_THUMBNAIL
from models.tables import Asset, PendingDeletion, Project
from models.thumbnail_schedule import HOLD_SECONDS, project_key
from models.users import ensure_user
from tests.queues import take


def element(element_id: str = "e1", kind: str = "image", **extra) -> dict:
    return {"id": element_id, "type": kind, "transform": {"x": 0, "y": 0, "scale": 1, "rotation": 0},
            "zIndex": 0, **extra}  # fmt: skip


def canvas(*elements: dict, **extra) -> dict:
    return {"lastModified": 1_700_000_000_000, "elements": list(elements), **extra}


def add_asset(session, user_id: str, kind: str = "image", thumbnail_key: str | None = None) -> str:
    asset_id = uuid.uuid4()
    session.add(Asset(id=asset_id, user_id=user_id, type=kind, storage_key=f"originals/x/{asset_id}.bin",
                      mime_type="image/webp", size_bytes=1, status="ready", thumbnail_key=thumbnail_key,
                      poster_key=thumbnail_key if kind == "video" else None))  # fmt: skip
    session.commit()
    return str(asset_id)


@pytest.fixture
def owner(client, auth_header):
    """A user seen once (so they have Project 01): (headers, user id, Project 01's id)."""
    headers = auth_header("user_owner")
    first = client.get("/v1/projects", headers=headers).json["items"][0]
    return headers, "user_owner", first["id"]


def put_state(client, headers, project_id, state, **extra_headers):
    return client.put(f"/v1/projects/{project_id}/state", data=json.dumps(state),
                      headers={**headers, "Content-Type": "application/json", **extra_headers})  # fmt: skip


def test_a_new_user_lists_project_01_with_its_metadata_only(client, auth_header):
    body = client.get("/v1/projects", headers=auth_header("user_fresh")).json

    assert [item["name"] for item in body["items"]] == ["Project 01"]
    assert set(body["items"][0]) == {"id", "name", "imageCount", "videoCount", "thumbnailUrl", "revision",
                                     "lastSavedAt", "createdAt"}  # fmt: skip
    assert body["nextCursor"] is None


def test_create_names_projects_iskra_project_nn_from_the_count(client, owner):
    headers, _, _ = owner

    second = client.post("/v1/projects", headers=headers, json={})
    third = client.post("/v1/projects", headers=headers)

    assert second.status_code == 201
    assert (second.json["name"], third.json["name"]) == ("Iskra Project 02", "Iskra Project 03")
    assert second.headers["ETag"] == '"0"'
    assert second.headers["Location"] == f"/v1/projects/{second.json['id']}"


def test_create_trims_a_given_name_and_refuses_a_blank_one(client, owner):
    headers, _, _ = owner

    named = client.post("/v1/projects", headers=headers, json={"name": "  Storyboard  "})
    blank = client.post("/v1/projects", headers=headers, json={"name": "   "})

    assert named.json["name"] == "Storyboard"
    assert blank.status_code == 422


@pytest.mark.parametrize(
    ("body", "content_type"),
    [('{"name": "Story', "application/json"), ("null", "application/json"), ("[]", "application/json"),
     ('{"name": "Story"}', "text/plain")],
    ids=["truncated", "null", "array", "not-json-content-type"],
)  # fmt: skip
def test_create_refuses_a_body_that_is_not_a_json_object_and_creates_nothing(
    client, owner, session, body, content_type
):
    headers, user_id, _ = owner

    response = client.post("/v1/projects", headers=headers, data=body, content_type=content_type)

    assert (response.status_code, response.json["type"]) == (422, "validation-failed")
    assert session.scalar(select(func.count()).where(Project.user_id == user_id)) == 1


def test_the_hundred_and_first_project_is_refused_with_409(client, owner, session):
    headers, user_id, _ = owner
    session.add_all(Project(user_id=user_id, name=f"P{n}", canvas_state=canvas()) for n in range(99))
    session.commit()

    response = client.post("/v1/projects", headers=headers)

    assert response.status_code == 409
    assert response.json["type"] == "too-many-projects"


def test_ten_concurrent_creates_at_95_projects_let_exactly_5_through(committed_app, auth_header, engine):
    headers = auth_header("user_capped")
    with committed_app.test_client() as client:
        client.get("/v1/me", headers=headers)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO projects (id, user_id, name, canvas_state) SELECT gen_random_uuid(), "
                 "'user_capped', 'P' || n, '{}' FROM generate_series(1, 94) AS n")
        )  # fmt: skip
    barrier = Barrier(10)

    def create() -> int:
        with committed_app.test_client() as client:
            barrier.wait()
            return client.post("/v1/projects", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(lambda _: create(), range(10)))

    assert statuses == [201] * 5 + [409] * 5
    with engine.connect() as connection:
        count = connection.scalar(text("SELECT count(*) FROM projects WHERE user_id = 'user_capped'"))
    assert count == 100


def test_list_is_sorted_by_last_save_not_creation_and_pages_with_a_cursor(client, owner, session):
    headers, _, first_id = owner
    ids = [first_id, *(client.post("/v1/projects", headers=headers).json["id"] for _ in range(4))]
    # Saved in the opposite order of creation (one test transaction has one now(), so set times).
    for minutes, project_id in enumerate(ids):
        project = session.get(Project, uuid.UUID(project_id))
        project.created_at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
        project.last_saved_at = datetime(2026, 2, 1, tzinfo=UTC) - timedelta(minutes=minutes)
    session.commit()

    pages = [client.get("/v1/projects?limit=2", headers=headers).json]
    while pages[-1]["nextCursor"]:
        pages.append(
            client.get(f"/v1/projects?limit=2&cursor={pages[-1]['nextCursor']}", headers=headers).json
        )

    assert [item["id"] for page in pages for item in page["items"]] == ids
    assert [len(page["items"]) for page in pages] == [2, 2, 1]


def test_a_page_holds_20_projects_unless_asked_for_up_to_100(client, owner, session):
    headers, user_id, _ = owner
    session.add_all(Project(user_id=user_id, name=f"P{n}", canvas_state=canvas()) for n in range(24))
    session.commit()

    default = client.get("/v1/projects", headers=headers).json
    largest = client.get("/v1/projects?limit=100", headers=headers).json

    assert (len(default["items"]), default["nextCursor"] is not None) == (20, True)
    assert (len(largest["items"]), largest["nextCursor"]) == (25, None)


def test_a_save_moves_its_project_to_the_top_of_the_list(committed_app, auth_header):
    headers = auth_header("user_reorder")
    client = committed_app.test_client()
    first_id = client.get("/v1/projects", headers=headers).json["items"][0]["id"]
    second_id = client.post("/v1/projects", headers=headers).json["id"]
    before = [item["id"] for item in client.get("/v1/projects", headers=headers).json["items"]]

    saved = put_state(client, headers, first_id, canvas(element()))

    after = client.get("/v1/projects", headers=headers).json["items"]
    assert before == [second_id, first_id]
    assert [item["id"] for item in after] == [first_id, second_id]
    assert after[0]["lastSavedAt"] == saved.json["lastSavedAt"] >= after[1]["lastSavedAt"]


def test_the_list_signs_the_url_of_a_rendered_project_thumbnail(client, owner, session):
    headers, _, project_id = owner
    session.get(Project, uuid.UUID(project_id)).thumbnail_key = f"projects/{project_id}/thumbnail-0.webp"
    session.commit()

    listed = client.get("/v1/projects", headers=headers).json["items"][0]

    assert listed["thumbnailUrl"].startswith("/files/")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "cursor=not-a-cursor"])
def test_a_bad_page_size_or_cursor_is_a_400(client, owner, query):
    response = client.get(f"/v1/projects?{query}", headers=owner[0])

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_blank_and_unknown_list_parameters_are_ignored(client, owner):
    headers, _, first_id = owner

    response = client.get("/v1/projects?limit=&cursor=&_=1732000000000", headers=headers)

    assert response.status_code == 200
    assert [item["id"] for item in response.json["items"]] == [first_id]


def test_get_returns_the_canvas_with_an_etag_and_signed_asset_thumbnails(client, owner, session):
    headers, user_id, project_id = owner
    image = add_asset(session, user_id, "image", thumbnail_key=f"renditions/{uuid.uuid4()}/thumbnail.webp")
    video = add_asset(session, user_id, "video", thumbnail_key=f"renditions/{uuid.uuid4()}/poster.webp")
    pending = add_asset(session, user_id, "image")
    state = canvas(element("a", assetId=image), element("b", "video", assetId=video),
                   element("c", assetId=pending), backgroundColor="#112233")  # fmt: skip
    put_state(client, headers, project_id, state)

    response = client.get(f"/v1/projects/{project_id}", headers=headers)

    assert response.headers["ETag"].startswith('"1-')
    body = response.json
    assert body["canvasState"] == state
    assert set(body["assetThumbnails"]) == {image, video}
    assert all(url.startswith("/files/") for url in body["assetThumbnails"].values())
    assert (body["imageCount"], body["videoCount"], body["revision"]) == (2, 1, 1)


def test_a_stored_canvas_naming_someone_elses_asset_never_signs_a_url_for_it(client, owner, session):
    headers, _, project_id = owner
    ensure_user(session, "user_victim")
    theirs = add_asset(
        session, "user_victim", "image", thumbnail_key=f"renditions/{uuid.uuid4()}/thumbnail.webp"
    )
    # As if written before the ownership check existed, or by a bug elsewhere: reading must not leak it.
    session.get(Project, uuid.UUID(project_id)).canvas_state = canvas(element("a", assetId=theirs))
    session.commit()

    response = client.get(f"/v1/projects/{project_id}", headers=headers)

    assert (response.status_code, response.json["assetThumbnails"]) == (200, {})


def test_someone_elses_project_is_the_same_404_as_a_missing_one(client, owner, auth_header):
    _, _, project_id = owner
    stranger = auth_header("user_stranger")
    missing = str(uuid.uuid4())

    responses = [
        client.get(f"/v1/projects/{project_id}", headers=stranger),
        client.get(f"/v1/projects/{missing}", headers=stranger),
        client.get("/v1/projects/not-a-uuid", headers=stranger),
        put_state(client, stranger, project_id, canvas()),
        put_state(client, stranger, project_id, canvas(), **{"If-Match": '"0"'}),
        client.patch(f"/v1/projects/{project_id}", headers=stranger, json={"name": "Mine"}),
        client.delete(f"/v1/projects/{project_id}", headers=stranger),
    ]

    assert {r.status_code for r in responses} == {404}
    assert len({json.dumps(r.json, sort_keys=True) for r in responses}) == 1
    assert client.head(f"/v1/projects/{project_id}", headers=stranger).status_code == 404


def test_a_save_bumps_the_revision_recounts_and_returns_the_new_etag(client, owner):
    headers, _, project_id = owner

    response = put_state(
        client, headers, project_id, canvas(element("a"), element("b", "video"), element("t", "text"))
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    assert response.json["revision"] == 1
    assert (response.json["imageCount"], response.json["videoCount"]) == (1, 1)
    listed = client.get("/v1/projects", headers=headers).json["items"][0]
    assert (listed["imageCount"], listed["videoCount"], listed["lastSavedAt"]) == (
        1,
        1,
        response.json["lastSavedAt"],
    )


def test_a_save_stores_the_canvas_as_sent_without_added_defaults(client, owner, session):
    headers, _, project_id = owner
    state = canvas(element("a", width=10.5))

    put_state(client, headers, project_id, state)

    stored = session.scalar(select(Project.canvas_state).where(Project.id == uuid.UUID(project_id)))
    assert stored == state
    assert "viewport" not in stored and "assetId" not in stored["elements"][0]


def test_if_match_with_the_current_revision_saves_and_a_stale_one_is_412(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas())

    fresh = put_state(client, headers, project_id, canvas(element()), **{"If-Match": '"1"'})
    stale = put_state(client, headers, project_id, canvas(), **{"If-Match": '"1"'})

    assert fresh.status_code == 200 and fresh.headers["ETag"] == '"2"'
    assert stale.status_code == 412
    assert stale.json["type"] == "revision-mismatch"
    assert stale.json["currentRevision"] == 2
    assert stale.headers["ETag"] == '"2"'
    assert client.get(f"/v1/projects/{project_id}", headers=headers).json["canvasState"]["elements"] != []


@pytest.mark.parametrize(("if_match", "status"), [
    ('W/"0"', 200), ("*", 200), ('"7", "0"', 200), ("0", 200), ('"abc"', 412), ('"99999999999999"', 412),
    ('""', 412), ('W/""', 412),
])  # fmt: skip
def test_if_match_accepts_weak_star_and_lists_and_never_matches_nonsense(client, owner, if_match, status):
    headers, _, project_id = owner

    response = put_state(client, headers, project_id, canvas(), **{"If-Match": if_match})

    assert response.status_code == status


def test_without_if_match_the_last_write_wins(client, owner):
    headers, _, project_id = owner
    put_state(client, headers, project_id, canvas(element("first")))

    response = put_state(client, headers, project_id, canvas(element("second")))

    assert response.status_code == 200
    body = client.get(f"/v1/projects/{project_id}", headers=headers).json
    assert [e["id"] for e in body["canvasState"]["elements"]] == ["second"]


def test_if_match_on_a_missing_project_is_404_not_412(client, owner):
    response = put_state(client, owner[0], str(uuid.uuid4()), canvas(), **{"If-Match": '"0"'})

    assert response.status_code == 404


def test_two_racing_saves_with_the_same_if_match_end_in_one_200_and_one_412(committed_app, auth_header):
    headers = auth_header("user_racer")
    with committed_app.test_client() as client:
        project_id = client.get("/v1/projects", headers=headers).json["items"][0]["id"]
    barrier = Barrier(2)

    def save(name: str) -> int:
        with committed_app.test_client() as client:
            barrier.wait()
            return put_state(
                client, headers, project_id, canvas(element(name)), **{"If-Match": '"0"'}
            ).status_code

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(save, ["left", "right"]))

    assert statuses == [200, 412]
    with committed_app.test_client() as client:
        assert client.get(f"/v1/projects/{project_id}", headers=headers).json["revision"] == 1


@pytest.mark.parametrize("state", [
    canvas(element(), extra=1),
    canvas(element(surprise=True)),
    canvas(element(), element()),
    canvas(element(transform={"x": "1", "y": 0, "scale": 1, "rotation": 0})),
    canvas(element(kind="sticker")),
    canvas(element(assetType="audio")),
    canvas(backgroundColor="red"),
    canvas(element(id="nul\u0000")),
    {"elements": []},
])  # fmt: skip
def test_a_canvas_that_breaks_the_schema_is_422_and_not_saved(client, owner, state):
    headers, _, project_id = owner

    response = put_state(client, headers, project_id, state)

    assert response.status_code == 422
    assert response.json["type"] == "validation-failed"
    assert client.get(f"/v1/projects/{project_id}", headers=headers).json["revision"] == 0


@pytest.mark.parametrize("number", ["NaN", "Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, owner, number):
    headers, _, project_id = owner
    raw = '{"lastModified": NUMBER, "elements": []}'.replace("NUMBER", number)

    response = client.put(f"/v1/projects/{project_id}/state", data=raw, headers=headers)

    assert response.status_code == 422


def test_more_than_1000_elements_are_refused(client, owner):
    headers, _, project_id = owner

    response = put_state(client, headers, project_id, canvas(*(element(f"e{n}") for n in range(1001))))

    assert response.status_code == 422
    assert "1000" in response.json["detail"]


def test_a_body_over_the_size_cap_is_413_before_parsing(client, owner, settings):
    headers, _, project_id = owner
    oversized = b"{" + b" " * settings.max_project_state_bytes + b"}"

    response = client.put(f"/v1/projects/{project_id}/state", data=oversized, headers=headers)

    assert response.status_code == 413
    assert response.json["type"] == "payload-too-large"


def test_an_element_naming_someone_elses_asset_is_422_naming_the_element(client, owner, session):
    headers, _, project_id = owner
    ensure_user(session, "user_other")
    theirs = add_asset(session, "user_other")
    mine = add_asset(session, "user_owner")
    state = canvas(element("ok", assetId=mine), element("stolen", assetId=theirs))

    response = put_state(client, headers, project_id, state)

    assert response.status_code == 422
    assert (response.json["elementId"], response.json["elementIndex"]) == ("stolen", 1)


@pytest.mark.parametrize("asset_id", ["not-a-uuid", str(uuid.uuid4())])
def test_an_element_naming_a_missing_asset_is_422(client, owner, asset_id):
    headers, _, project_id = owner

    response = put_state(client, headers, project_id, canvas(element("ghost", assetId=asset_id)))

    assert (response.status_code, response.json["elementId"]) == (422, "ghost")


def test_an_element_claiming_the_wrong_asset_type_is_422(client, owner, session):
    headers, user_id, project_id = owner
    video = add_asset(session, user_id, "video")

    response = put_state(client, headers, project_id, canvas(element("v", assetId=video, assetType="image")))

    assert response.status_code == 422


def test_rename_trims_and_keeps_the_revision(client, owner):
    headers, _, project_id = owner

    response = client.patch(f"/v1/projects/{project_id}", headers=headers, json={"name": "  Moodboard "})

    assert response.status_code == 200
    assert (response.json["name"], response.json["revision"]) == ("Moodboard", 0)


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "tab\there"])
def test_rename_refuses_names_outside_1_to_100_characters(client, owner, name):
    response = client.patch(f"/v1/projects/{owner[2]}", headers=owner[0], json={"name": name})

    assert response.status_code == 422


def test_delete_removes_the_project_keeps_assets_and_outboxes_the_thumbnail(client, owner, session):
    headers, user_id, project_id = owner
    asset_id = add_asset(session, user_id)
    put_state(client, headers, project_id, canvas(element(assetId=asset_id)))
    session.get(Project, uuid.UUID(project_id)).thumbnail_key = f"projects/{project_id}/thumbnail-1.webp"
    session.commit()

    response = client.delete(f"/v1/projects/{project_id}", headers=headers)

    assert response.status_code == 204
    assert client.get(f"/v1/projects/{project_id}", headers=headers).status_code == 404
    assert session.get(Asset, uuid.UUID(asset_id)) is not None
    outboxed = session.scalars(select(PendingDeletion.storage_key)).all()
    assert f"projects/{project_id}/thumbnail-1.webp" in outboxed


def test_five_quick_saves_enqueue_exactly_one_delayed_render(client, owner, redis_client, settings):
    headers, user_id, project_id = owner
    queue = f"{settings.redis_key_prefix}renders"

    for n in range(5):
        assert put_state(client, headers, project_id, canvas(element(f"e{n}"))).status_code == 200

    messages = [m for m in redis_client.lrange(queue, 0, -1) if project_id.encode() in m]
    for message in messages:
        redis_client.lrem(queue, 0, message)
    assert len(messages) == 1
    headers_ = json.loads(messages[0])["headers"]
    assert headers_["task"] == RENDER_PROJECT_THUMBNAIL
    assert headers_["eta"] is not None
    args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(messages[0])["body"]))
    assert args == [project_id, user_id]
    ttl = redis_client.pttl(project_key(settings.redis_key_prefix, user_id, uuid.UUID(project_id)))
    due_in = (datetime.fromisoformat(headers_["eta"]) - datetime.now(UTC)).total_seconds() * 1000
    # The key lives until the render starts, or its hold after the due time lapses.
    assert ttl > 0 and abs(ttl - due_in - HOLD_SECONDS * 1000) < 1000


def test_a_save_after_the_debounce_window_schedules_the_next_render(client, owner, redis_client, settings):
    headers, user_id, project_id = owner
    put_state(client, headers, project_id, canvas(element("early")))
    first = take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)
    # The render has started (it releases the hold).
    redis_client.delete(project_key(settings.redis_key_prefix, user_id, uuid.UUID(project_id)))

    put_state(client, headers, project_id, canvas(element("late")))

    assert len(first) == 1
    assert len(take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)) == 1


def test_one_users_saves_of_three_projects_schedule_renders_one_user_interval_apart(
    client, auth_header, app, redis_client, settings
):
    user_id = f"user_{uuid.uuid4().hex[:12]}"
    headers = auth_header(user_id)
    app.extensions["iskra"].settings = settings.model_copy(
        update={"project_thumbnail_user_interval_seconds": 60.0}
    )
    ids = [client.get("/v1/projects", headers=headers).json["items"][0]["id"]]
    ids += [client.post("/v1/projects", headers=headers).json["id"] for _ in range(2)]

    for project_id in ids * 3:  # autosaving all three, three times over
        assert put_state(client, headers, project_id, canvas()).status_code == 200

    etas = [
        datetime.fromisoformat(message.headers["eta"])
        for project_id in ids
        for message in take(redis_client, settings, "renders", RENDER_PROJECT_THUMBNAIL, project_id)
    ]
    assert len(etas) == 3  # one per project
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(sorted(etas))]
    assert all(gap >= 59 for gap in gaps), gaps  # not three renders 5 s after the saves


def test_a_save_succeeds_when_the_thumbnail_cannot_be_scheduled(client, owner, app):
    class BrokenRedis:
        def set(self, *args, **kwargs):
            raise ConnectionError("redis is down")

    app.extensions["iskra"].redis = BrokenRedis()
    headers, _, project_id = owner

    response = put_state(client, headers, project_id, canvas())

    assert response.status_code == 200


FRACTION_17000 = "0." + "0" * 17000 + "1"


@pytest.mark.parametrize(
    "number", ["1e-20000", FRACTION_17000, "-0e-16384", "1.5e-16383", "0e-" + "9" * 5000]
)
def test_numbers_jsonb_cannot_hold_are_a_422_not_a_500_and_nothing_is_saved(client, owner, number):
    headers, _, project_id = owner
    raw = '{"lastModified": 1, "elements": [], "viewport": {"x": NUMBER, "y": 0, "scale": 1}}'

    response = client.put(
        f"/v1/projects/{project_id}/state", data=raw.replace("NUMBER", number), headers=headers
    )

    assert response.status_code == 422, response.json
    assert response.json["type"] == "validation-failed"
    assert client.get(f"/v1/projects/{project_id}", headers=headers).json["revision"] == 0


@pytest.mark.parametrize("number", ["1e-16383", "0." + "0" * 16382 + "1", "0e131073", "123.5e-100"])
def test_numbers_at_the_edge_of_what_jsonb_holds_are_saved(client, owner, number):
    headers, _, project_id = owner
    raw = '{"lastModified": 1, "elements": [], "viewport": {"x": NUMBER, "y": 0, "scale": 1}}'

    response = client.put(
        f"/v1/projects/{project_id}/state", data=raw.replace("NUMBER", number), headers=headers
    )

    assert response.status_code == 200, response.json
