"""The stream of a real events process: delivery, commit order, isolation, rollback, resume, reset, pings."""

from __future__ import annotations

import pytest
import redis

from models import projects
from models.reservations import reserve
from tests.web.events.sse import open_stream

pytestmark = pytest.mark.e2e


def _rename(committing, user_id: str, project_id: str, name: str) -> None:
    with committing.begin() as session:
        projects.rename_project(session, user_id, project_id, name)


def _first_project(committing, user_id: str) -> str:
    with committing.begin() as session:
        rows, _ = projects.list_projects(session, user_id, 1, None)
    return str(rows[0].id)


def test_a_committed_change_reaches_the_open_stream_as_one_sse_event(events_server, committing, new_user):
    user_id, headers = new_user()
    with open_stream(events_server.port, headers) as stream:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-cache"
        with committing.begin() as session:
            reserve(session, user_id, "image", 2)
        event = stream.next()

    assert stream.retry == 3000
    assert event.type == "usage" and event.id
    assert event.body["generations"]["image"] == {
        "used": 2,
        "limit": 12,
        "remaining": 10,
        "percentage": 16.67,
    }
    assert "\n" not in event.data


def test_events_arrive_in_commit_order_with_increasing_ids(events_server, committing, new_user):
    user_id, headers = new_user()
    project_id = _first_project(committing, user_id)
    with open_stream(events_server.port, headers) as stream:
        for number in range(5):
            _rename(committing, user_id, project_id, f"Name {number}")
        events = [stream.next() for _ in range(5)]

    assert [event.body["name"] for event in events] == [f"Name {number}" for number in range(5)]
    ids = [tuple(int(part) for part in event.id.split("-")) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_a_rolled_back_change_publishes_nothing(events_server, committing, new_user):
    user_id, headers = new_user()
    project_id = _first_project(committing, user_id)
    with open_stream(events_server.port, headers) as stream:
        session = committing()
        with session.begin():
            reserve(session, user_id, "video", 1)
            projects.rename_project(session, user_id, project_id, "Never seen")
            session.rollback()
        session.close()
        _rename(committing, user_id, project_id, "Seen")
        event = stream.next()
        assert stream.quiet(1.5)

    assert (event.type, event.body["name"]) == ("project", "Seen")


def test_two_users_never_see_each_others_events(events_server, committing, new_user):
    alice, alice_headers = new_user()
    bob, bob_headers = new_user()
    alice_stream = open_stream(events_server.port, alice_headers)
    with alice_stream, open_stream(events_server.port, bob_headers) as bob_stream:
        with committing.begin() as session:
            reserve(session, alice, "image", 1)
        with committing.begin() as session:
            reserve(session, bob, "video", 1)
        alice_event, bob_event = alice_stream.next(), bob_stream.next()
        assert alice_stream.quiet(1.0) and bob_stream.quiet(0.2)

    assert alice_event.body["generations"]["image"]["used"] == 1
    assert alice_event.body["generations"]["video"]["used"] == 0
    assert bob_event.body["generations"]["video"]["used"] == 1
    assert bob_event.body["generations"]["image"]["used"] == 0


def test_two_streams_of_one_user_both_get_every_event(events_server, committing, new_user):
    user_id, headers = new_user()
    with (
        open_stream(events_server.port, headers) as first,
        open_stream(events_server.port, headers) as second,
    ):
        with committing.begin() as session:
            reserve(session, user_id, "image", 1)
        assert first.next().id == second.next().id


@pytest.mark.parametrize("via", ["header", "query"])
def test_resuming_after_a_disconnect_loses_nothing_and_repeats_nothing(
    events_server, committing, new_user, via
):
    user_id, headers = new_user()
    project_id = _first_project(committing, user_id)
    with open_stream(events_server.port, headers) as stream:
        _rename(committing, user_id, project_id, "Before")
        seen = stream.next()
    for name in ("While away 1", "While away 2"):
        _rename(committing, user_id, project_id, name)

    resume = {"Last-Event-ID": seen.id} if via == "header" else {}
    query = {} if via == "header" else {"lastEventId": seen.id}
    with open_stream(events_server.port, {**headers, **resume}, **query) as stream:
        replayed = [stream.next(), stream.next()]
        _rename(committing, user_id, project_id, "After")
        live = stream.next()
        assert stream.quiet(1.0)

    names = [event.body["name"] for event in [*replayed, live]]
    assert names == ["While away 1", "While away 2", "After"]
    assert len({seen.id, *(event.id for event in [*replayed, live])}) == 4


def test_an_id_older_than_what_is_kept_gets_one_reset_event_then_live_events(
    events_server, committing, new_user, settings
):
    user_id, headers = new_user()
    project_id = _first_project(committing, user_id)
    with open_stream(events_server.port, headers) as stream:
        _rename(committing, user_id, project_id, "Old")
        old = stream.next()
        _rename(committing, user_id, project_id, "Newer")
        newer = stream.next()
    # Retention passed the old event by (what MAXLEN and expiry do in time).
    key = f"{settings.redis_key_prefix}events:user:{user_id}"
    redis.Redis.from_url(settings.redis_url).xtrim(key, minid=newer.id, approximate=False)

    with open_stream(events_server.port, {**headers, "Last-Event-ID": old.id}) as stream:
        reset = stream.next()
        assert stream.quiet(1.0)
        _rename(committing, user_id, project_id, "Live")
        live = stream.next()

    assert (reset.type, reset.body, reset.id) == ("reset", {}, newer.id)
    assert live.body["name"] == "Live"


def test_a_last_event_id_never_handed_out_gets_a_reset_event_carrying_the_newest_id(
    events_server, new_user, settings
):
    user_id, headers = new_user()
    key = f"{settings.redis_key_prefix}events:user:{user_id}"
    newest = redis.Redis.from_url(settings.redis_url).xrevrange(key, count=1)[0][0].decode()
    with open_stream(events_server.port, {**headers, "Last-Event-ID": "not-an-id"}) as stream:
        reset = stream.next()

    assert (reset.type, reset.id) == ("reset", newest)


def test_a_reset_for_a_user_with_no_kept_events_clears_the_last_event_id(events_server, new_user, settings):
    user_id, headers = new_user()
    key, client = (
        f"{settings.redis_key_prefix}events:user:{user_id}",
        redis.Redis.from_url(settings.redis_url),
    )
    client.delete(key)
    with open_stream(events_server.port, {**headers, "Last-Event-ID": "1-0"}) as stream:
        reset = stream.next()

    assert (reset.type, reset.id) == ("reset", "")


def test_an_idle_stream_gets_ping_comments(events_server, new_user):
    _, headers = new_user()
    with open_stream(events_server.port, headers) as stream:
        pings = [stream.next_comment(timeout=5) for _ in range(2)]

    assert pings == ["ping", "ping"]
