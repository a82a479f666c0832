"""The relay: one active across events processes, a standby takes over, long bodies read back."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest
import redis

from models.asset_lifecycle import create_import
from models.reservations import reserve
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


def _worker_of(master: int) -> int:
    return int(Path(f"/proc/{master}/task/{master}/children").read_text().split()[0])


@pytest.mark.e2e
def test_events_committed_while_the_active_relay_is_dead_reach_the_stream_once_a_standby_takes_over(
    settings, tmp_path, committing, new_user
):
    user_id, headers = new_user(relayed=False)
    first_port, first = start_events_server(settings, tmp_path / "first.log")
    second_port, second = start_events_server(settings, tmp_path / "second.log")
    active = EventsServer(first_port, tmp_path / "first.log")
    standby = EventsServer(second_port, tmp_path / "second.log")
    with second as second_process, first as first_process:
        wait_until(lambda: answers(first_port) and answers(second_port), timeout=30)
        wait_until(lambda: active.relaying() or standby.relaying(), timeout=30)
        if standby.relaying():
            active, standby, first_process = standby, active, second_process
        with open_stream(standby.port, headers) as stream:
            with committing.begin() as session:
                reserve(session, user_id, "image", 1)
            before = stream.next()
            # The whole active process, master first so nothing restarts its worker: the gap begins.
            worker = _worker_of(first_process.pid)
            os.kill(first_process.pid, signal.SIGKILL)
            os.kill(worker, signal.SIGKILL)
            for count in (2, 3):
                with committing.begin() as session:
                    reserve(session, user_id, "image", count)
            during = [stream.next(timeout=30), stream.next(timeout=30)]
            assert stream.quiet(1.0)
        assert standby.relaying()

    used = [event.body["generations"]["image"]["used"] for event in [before, *during]]
    assert used == [1, 3, 6]
    assert len({event.id for event in [before, *during]}) == 3
