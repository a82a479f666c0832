"""The relay: one active across events processes, a standby takes over, long bodies read back."""

from __future__ import annotations

import json
import signal
import uuid

import pytest
import redis

from models.asset_lifecycle import create_import
from models.generations import reserve
from models.users import ensure_user
from tests.conftest import build_services
from tests.processes import wait_until
from tests.web.events.conftest import EventsServer, answers, start_events_server
from tests.web.events.sse import open_stream
from web.events.live import build_live


def test_a_long_asset_is_relayed_with_the_full_body_read_back_after_commit(settings, engine, committing):
    user_id = f"user_{uuid.uuid4().hex[:10]}"
    with committing.begin() as session:
        ensure_user(session, user_id)
        asset = create_import(
            session, user_id=user_id, asset_type="image", source_url="https://example.com/a.png",
            generation={"prompt": "ж" * 4000, "model": "m" * 200},
        )  # fmt: skip
    live = build_live(build_services(settings, engine, committing))

    live.relay.publish(json.dumps({"u": user_id, "t": "asset", "reread": str(asset.id)}))

    (_, fields), *_ = redis.Redis.from_url(settings.redis_url).xrevrange(live.events.key(user_id), count=1)
    body = json.loads(fields[b"d"])
    assert fields[b"t"] == b"asset"
    assert (body["id"], body["status"], body["metadata"]["prompt"]) == (str(asset.id), "pending", "ж" * 4000)


@pytest.mark.e2e
def test_when_the_active_relay_dies_a_standby_process_takes_over(settings, tmp_path, committing, new_user):
    user_id, headers = new_user()
    first_port, first = start_events_server(settings, tmp_path / "first.log")
    second_port, second = start_events_server(settings, tmp_path / "second.log")
    active, standby = (
        EventsServer(first_port, tmp_path / "first.log"),
        EventsServer(second_port, tmp_path / "second.log"),
    )
    with second:
        with first as first_process:
            wait_until(lambda: answers(first_port) and answers(second_port), timeout=30)
            wait_until(active.relaying, timeout=30)
            assert not standby.relaying()
            first_process.send_signal(signal.SIGKILL)
            first_process.wait(10)
        wait_until(standby.relaying, timeout=30)
        with open_stream(second_port, headers) as stream:
            with committing.begin() as session:
                reserve(session, user_id, "image", 4)
            event = stream.next()

    assert event.body["generations"]["image"]["used"] == 4
