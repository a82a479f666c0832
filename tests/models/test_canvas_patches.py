"""Incremental saves: JSON Patch parsing and applying, and patch_state's lock, limits and stored result."""

from __future__ import annotations

import json
import uuid

import jsonpatch
import pytest
from sqlalchemy import String, bindparam, cast, event, select, text
from sqlalchemy.dialects.postgresql import JSONB

from models import project_patches, projects
from models.canvas import parse_canvas_state
from models.canvas_patches import apply_canvas_patch, asset_references, parse_canvas_patch
from models.errors import (
    BadRequest,
    NotFound,
    PatchConflict,
    PayloadTooLarge,
    PreconditionFailed,
    ValidationFailed,
)
from models.tables import Asset, Project
from models.users import ensure_user

USER = "user_patches"
LIMITS = (1000, 2 * 1024 * 1024)


def element(element_id: str, x: float = 0.0, **extra) -> dict:
    return {"id": element_id, "type": "image", "zIndex": 0,
            "transform": {"x": x, "y": 0, "scale": 1, "rotation": 0}, **extra}  # fmt: skip


def canvas(*elements: dict, **extra) -> dict:
    return {"lastModified": 1, "elements": list(elements), **extra}


def patch_of(*operations: dict) -> jsonpatch.JsonPatch:
    return parse_canvas_patch(json.dumps(list(operations)).encode())


def apply(document: dict, *operations: dict, max_bytes: int = 10**6) -> dict:
    return json.loads(apply_canvas_patch(document, patch_of(*operations), max_bytes))


def test_a_patch_applies_replace_add_remove_move_and_passing_tests_in_order():
    document = canvas(element("a"), element("b"), element("c"))

    patched = apply(
        document,
        {"op": "test", "path": "/elements/1/id", "value": "b"},
        {"op": "replace", "path": "/elements/0/transform/x", "value": 12.5},
        {"op": "remove", "path": "/elements/1"},
        {"op": "add", "path": "/elements/-", "value": element("d")},
        {"op": "move", "from": "/elements/0", "path": "/elements/2"},
        {"op": "add", "path": "/backgroundColor", "value": "#fff"},
    )

    assert [e["id"] for e in patched["elements"]] == ["c", "d", "a"]
    assert patched["elements"][2]["transform"]["x"] == 12.5
    assert patched["backgroundColor"] == "#fff"


def test_the_result_is_compact_json_keeping_non_ascii_text_as_is():
    raw = apply_canvas_patch(canvas(), patch_of({"op": "add", "path": "/note", "value": "Ünïcode"}), 10**6)

    assert raw == '{"lastModified":1,"elements":[],"note":"Ünïcode"}'.encode()


@pytest.mark.parametrize("operation", [
    {"op": "test", "path": "/lastModified", "value": 2},
    {"op": "replace", "path": "/elements/5/transform/x", "value": 1},
    {"op": "replace", "path": "/viewport", "value": {"x": 0, "y": 0, "scale": 1}},
    {"op": "remove", "path": "/elements/1"},
    {"op": "add", "path": "/elements/2", "value": {}},
    {"op": "replace", "path": "/elements/first/id", "value": "x"},
    {"op": "replace", "path": "/lastModified/x", "value": 1},
    {"op": "move", "from": "/elements", "path": "/elements/0"},
], ids=["failed-test", "index-past-end", "missing-member", "remove-missing", "insert-past-end",
        "not-an-index", "into-a-number", "into-itself"])  # fmt: skip
def test_a_patch_whose_base_is_not_the_stored_canvas_is_a_409_conflict(operation):
    with pytest.raises(PatchConflict) as refused:
        apply(canvas(element("a")), operation)

    assert (refused.value.status, refused.value.type) == (409, "patch-conflict")


@pytest.mark.parametrize("body", [
    b'{"op": "add", "path": "/x", "value": 1}', b"[1]", b'[{"op": "frobnicate", "path": "/x"}]',
    b'[{"path": "/x"}]', b'[{"op": "add", "path": "x", "value": 1}]', b'[{"op": "add", "path": 5}]',
])  # fmt: skip
def test_a_body_that_is_no_json_patch_is_a_422(body):
    with pytest.raises(ValidationFailed):
        parse_canvas_patch(body)


@pytest.mark.parametrize("operation", [{"op": "add", "path": "/x"}, {"op": "move", "path": "/x"}])
def test_an_operation_missing_its_value_or_from_is_a_422_when_applied(operation):
    with pytest.raises(ValidationFailed):
        apply(canvas(), operation)


@pytest.mark.parametrize("body", [b"[{", b"\xff\xfe", b'[{"op": "test", "path": "", "value": NaN}]',
                                  b"[" * 100_000 + b"]" * 100_000])  # fmt: skip
def test_a_body_that_is_not_json_with_finite_numbers_is_a_400(body):
    with pytest.raises(BadRequest):
        parse_canvas_patch(body)


def test_a_result_over_the_byte_cap_is_refused_even_from_a_small_patch():
    big = "x" * 2000

    with pytest.raises(PayloadTooLarge):
        apply(canvas(), {"op": "add", "path": "/note", "value": big}, max_bytes=1500)


def test_asset_references_are_the_pairs_the_stored_elements_name():
    document = canvas(element("a", assetId="A", assetType="image"), element("b", assetId="B"), element("c"))

    assert asset_references(document) == {("A", "image"), ("B", None), (None, None)}
    assert asset_references({"elements": "nonsense"}) == set()


@pytest.fixture
def project_id(session) -> str:
    ensure_user(session, USER)
    project = projects.create_project(session, USER, None, 100)
    session.commit()
    return str(project.id)


def put(session, project_id: str, state: dict) -> projects.Saved:
    raw = json.dumps(state)
    return projects.save_state(session, USER, project_id, raw, parse_canvas_state(raw.encode(), 1000), None)


def stored(session, project_id: str) -> Project:
    session.expire_all()
    return session.get(Project, uuid.UUID(project_id))


def add_asset(session, user_id: str = USER, kind: str = "image") -> str:
    asset_id = uuid.uuid4()
    session.add(Asset(id=asset_id, user_id=user_id, type=kind, storage_key=f"originals/x/{asset_id}.bin",
                      mime_type="image/webp", size_bytes=1, status="ready"))  # fmt: skip
    session.flush()
    return str(asset_id)


def test_patch_state_stores_what_a_full_save_of_the_result_stores(session, project_id):
    put(session, project_id, canvas(element("a"), element("b", assetId=add_asset(session)), viewport=None))
    before = stored(session, project_id).canvas_state
    operations = [{"op": "replace", "path": "/elements/0/transform/x", "value": 7.25},
                  {"op": "remove", "path": "/viewport"}, {"op": "add", "path": "/elements/-",
                  "value": element("v", type="video")}]  # fmt: skip
    expected = jsonpatch.apply_patch(before, operations)

    saved = project_patches.patch_state(session, USER, project_id, patch_of(*operations), [1], LIMITS)

    row = stored(session, project_id)
    as_put = cast(bindparam("as_put", json.dumps(expected), type_=String), JSONB)
    equal = session.scalar(select(Project.canvas_state == as_put).where(Project.id == row.id))
    assert equal is True and row.canvas_state == expected
    assert (saved.revision, row.revision, saved.image_count, saved.video_count) == (2, 2, 2, 1)
    assert (row.image_count, row.video_count, row.last_saved_at) == (2, 1, saved.last_saved_at)


def test_patch_state_refuses_a_stale_revision_with_412_and_the_current_etag(session, project_id):
    put(session, project_id, canvas())

    with pytest.raises(PreconditionFailed) as refused:
        project_patches.patch_state(session, USER, project_id, patch_of(), [0], LIMITS)

    assert refused.value.extra == {"currentRevision": 1}
    assert refused.value.headers == {"ETag": '"1"'}


def test_patch_state_on_someone_elses_or_a_missing_project_is_404(session, project_id):
    ensure_user(session, "user_stranger")

    for user, pid in (("user_stranger", project_id), (USER, str(uuid.uuid4())), (USER, "nope")):
        with pytest.raises(NotFound):
            project_patches.patch_state(session, user, pid, patch_of(), [0], LIMITS)


def statements_of(session, call) -> list[str]:
    seen: list[str] = []
    connection = session.connection()

    def record(_conn, _cursor, statement, *_rest):
        seen.append(" ".join(statement.split()))

    event.listen(connection, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(connection, "before_cursor_execute", record)
    return seen


def test_moving_one_element_reads_only_what_the_patch_names_under_a_row_lock(session, project_id):
    put(session, project_id, canvas(*(element(f"e{n}") for n in range(50))))
    move = {"op": "replace", "path": "/elements/7/transform/x", "value": 3.5}

    seen = statements_of(
        session, lambda: project_patches.patch_state(session, USER, project_id, patch_of(move), [1], LIMITS)
    )

    assert [statement.split()[0] for statement in seen] == ["SELECT", "UPDATE"]
    assert seen[0].endswith("FOR UPDATE OF p") and "jsonb_path_query_array" in seen[0]
    assert stored(session, project_id).canvas_state["elements"][7]["transform"]["x"] == 3.5


@pytest.mark.parametrize("operations", [
    [{"op": "remove", "path": "/elements/0"},
     {"op": "replace", "path": "/elements/0/transform/x", "value": 9}],
    [{"op": "move", "from": "/elements/2", "path": "/elements/0"},
     {"op": "test", "path": "/elements/0/id", "value": "c"}],
    [{"op": "replace", "path": "/elements", "value": [element("z")]}],
    [{"op": "add", "path": "/elements/-", "value": element("d")}, {"op": "copy", "from": "/elements/1",
     "path": "/elements/-"}, {"op": "remove", "path": "/elements/4"}],
    [{"op": "test", "path": "", "value": canvas(element("a"), element("b"), element("c"))}],
], ids=["shifted-index", "moved-then-tested", "whole-list", "copied-then-removed",
        "whole-canvas-test"])  # fmt: skip
def test_a_patch_that_needs_the_whole_canvas_gets_the_same_result(session, project_id, operations):
    start = canvas(element("a"), element("b"), element("c"))
    put(session, project_id, start)

    project_patches.patch_state(session, USER, project_id, patch_of(*operations), [1], LIMITS)

    assert stored(session, project_id).canvas_state == jsonpatch.apply_patch(start, operations)


def test_a_copied_element_is_a_duplicate_id_whichever_way_the_patch_is_applied(session, project_id):
    put(session, project_id, canvas(element("a"), element("b")))
    copied = {"op": "copy", "from": "/elements/0", "path": "/elements/-"}
    added = {"op": "add", "path": "/elements/-", "value": element("b")}

    for operation in (copied, added):
        with pytest.raises(ValidationFailed) as refused:
            project_patches.patch_state(session, USER, project_id, patch_of(operation), [1], LIMITS)
        assert "is used by an earlier element" in refused.value.extra["errors"][0]["msg"]


@pytest.mark.parametrize("operation", [
    {"op": "add", "path": "/elements/0/surprise", "value": True},
    {"op": "replace", "path": "/elements/0/transform/x", "value": "1"},
    {"op": "add", "path": "/elements/-", "value": element("a")},
    {"op": "remove", "path": "/lastModified"},
    {"op": "replace", "path": "/elements/0/transform/x", "value": "1e999"},
])  # fmt: skip
def test_a_patch_whose_result_breaks_the_schema_is_422_and_stores_nothing(session, project_id, operation):
    put(session, project_id, canvas(element("a")))
    # A number a double cannot hold, written as a number: refused like `1e999` in a full save.
    raw = json.dumps([operation]).replace('"1e999"', "1e999").encode()

    with pytest.raises(ValidationFailed):
        project_patches.patch_state(session, USER, project_id, parse_canvas_patch(raw), [1], LIMITS)

    assert stored(session, project_id).revision == 1


def test_the_element_limit_applies_to_the_patched_canvas(session, project_id):
    put(session, project_id, canvas(*(element(f"e{n}") for n in range(3))))

    with pytest.raises(ValidationFailed) as refused:
        project_patches.patch_state(
            session, USER, project_id, patch_of({"op": "add", "path": "/elements/-", "value": element("x")}),
            [1], (3, LIMITS[1]),
        )  # fmt: skip

    assert "3" in refused.value.detail


def test_only_asset_references_the_patch_introduces_are_checked(session, project_id):
    ensure_user(session, "user_other")
    gone, theirs = add_asset(session), add_asset(session, "user_other")
    put(session, project_id, canvas(element("old", assetId=gone)))
    session.execute(text("DELETE FROM assets WHERE id = :id"), {"id": gone})
    move = {"op": "replace", "path": "/elements/0/transform/x", "value": 5}
    steal = {"op": "add", "path": "/elements/-", "value": element("new", assetId=theirs)}
    retype = {"op": "add", "path": "/elements/0/assetType", "value": "video"}

    moved = project_patches.patch_state(session, USER, project_id, patch_of(move), [1], LIMITS)
    with pytest.raises(ValidationFailed) as stolen:
        project_patches.patch_state(session, USER, project_id, patch_of(steal), [2], LIMITS)
    with pytest.raises(ValidationFailed) as retyped:
        project_patches.patch_state(session, USER, project_id, patch_of(retype), [2], LIMITS)

    assert moved.revision == 2
    assert (stolen.value.extra["elementId"], stolen.value.extra["elementIndex"]) == ("new", 1)
    assert retyped.value.extra["elementId"] == "old"


@pytest.mark.parametrize("index", ["²", "99999999999999", "01", "-"])
def test_an_index_that_is_not_a_plain_array_index_is_a_conflict_not_a_crash(session, project_id, index):
    put(session, project_id, canvas(element("a")))
    move = {"op": "replace", "path": f"/elements/{index}/transform/x", "value": 1}

    with pytest.raises(PatchConflict):
        project_patches.patch_state(session, USER, project_id, patch_of(move), [1], LIMITS)


@pytest.mark.parametrize("operations", [
    [{"op": "replace", "path": "/elements/1/transform/x", "value": 2.5},
     {"op": "replace", "path": "/lastModified", "value": 2}],
    [{"op": "remove", "path": "/viewport"}, {"op": "add", "path": "/elements/0/width", "value": 3}],
    [{"op": "add", "path": "/elements/-", "value": element("d")}],
    [{"op": "add", "path": "/elements/1", "value": element("d")}],
    [{"op": "remove", "path": "/elements/0"}, {"op": "remove", "path": "/elements/0"},
     {"op": "remove", "path": "/elements/0"}],
    [{"op": "move", "from": "/elements/0", "path": "/elements/-"},
     {"op": "replace", "path": "/elements/0/transform/y", "value": 1}],
], ids=["moved", "member-removed", "appended", "inserted", "emptied", "reordered"])  # fmt: skip
def test_every_kind_of_change_is_stored_as_the_full_save_of_its_result(session, project_id, operations):
    start = canvas(element("a"), element("b", width=1.5), element("c"), viewport={"x": 1, "y": 2, "scale": 1})
    put(session, project_id, start)
    expected = jsonpatch.apply_patch(start, operations)

    project_patches.patch_state(session, USER, project_id, patch_of(*operations), [1], LIMITS)

    as_put = cast(bindparam("as_put", json.dumps(expected), type_=String), JSONB)
    project = stored(session, project_id)
    assert session.scalar(select(Project.canvas_state == as_put).where(Project.id == project.id)) is True
    assert project.canvas_state == expected


@pytest.mark.parametrize("legacy", [
    '{"lastModified": 1, "elements": [{"id": {"x": 1}}, {"id": {"x": 1}}]}',
    '{"lastModified": 1, "elements": {"0": 1}}',
    '{"lastModified": 1}',
])  # fmt: skip
def test_a_canvas_stored_before_the_schema_held_is_judged_whole_and_refused(session, project_id, legacy):
    session.execute(text("UPDATE projects SET canvas_state = CAST(:c AS jsonb) WHERE id = :id"),
                    {"c": legacy, "id": project_id})  # fmt: skip
    bump = {"op": "replace", "path": "/lastModified", "value": 2}

    with pytest.raises(ValidationFailed):
        project_patches.patch_state(session, USER, project_id, patch_of(bump), [0], LIMITS)
