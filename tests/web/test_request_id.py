"""Request ids: one on every response, in the request's log event, and on the tasks the request sent."""

from __future__ import annotations

import logging
import uuid

from core import taskqueue
from tests.queues import take
from tests.web.uploading import upload
from tests.workers.media.hostile_media import good_jpeg

HEADER = "X-Request-ID"


def test_every_response_carries_a_fresh_request_id(client):
    first, second = client.get("/livez"), client.get("/no/such/route")

    assert len(first.headers[HEADER]) == 32 and len(second.headers[HEADER]) == 32
    assert first.headers[HEADER] != second.headers[HEADER]


def test_a_sane_request_id_from_the_caller_is_kept(client):
    response = client.get("/livez", headers={HEADER: "lb-1234.abcd_EF"})

    assert response.headers[HEADER] == "lb-1234.abcd_EF"


def test_an_offered_request_id_that_could_forge_log_lines_is_replaced(client):
    offered = 'x" injected="1'

    response = client.get("/livez", headers={HEADER: offered})

    assert response.headers[HEADER] != offered and len(response.headers[HEADER]) == 32


def test_the_request_log_event_carries_the_request_id_and_the_route_template(client, auth_header, caplog):
    caplog.set_level(logging.INFO, logger="iskra.access")
    missing = str(uuid.uuid4())

    response = client.get(f"/v1/assets/{missing}", headers={**auth_header(), HEADER: "req-log-00000001"})

    events = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request"]
    assert response.status_code == 404
    assert [(e["request_id"], e["route"], e["status"]) for e in events] == [
        ("req-log-00000001", "/v1/assets/<asset_id>", 404)
    ]


def test_a_task_sent_by_a_request_carries_that_requests_id(client, auth_header, redis_client, settings):
    response = upload(client, {**auth_header(), HEADER: "req-upload-0000001"}, good_jpeg(32, 32))

    assert response.status_code == 201, response.json
    sent = take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, response.json["id"])
    assert [message.headers["request_id"] for message in sent] == ["req-upload-0000001"]
    assert response.headers[HEADER] == "req-upload-0000001"
