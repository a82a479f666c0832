"""Browser's view: an upload's asset goes pending → processing → ready on the open stream, no polling."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from tests.processes import running, settings_env, worker_command
from tests.web.events.sse import open_stream
from tests.web.uploading import upload
from tests.workers.media.hostile_media import good_jpeg

pytestmark = pytest.mark.e2e


def test_an_upload_streams_its_asset_from_pending_to_ready_with_its_thumbnail_url(
    committed_app, auth_header, settings, events_server, tmp_path
):
    headers = auth_header(f"user_live_{uuid.uuid4().hex[:8]}")
    client = committed_app.test_client()
    client.get("/v1/me", headers=headers)  # the user exists before the stream opens
    content = good_jpeg(1200, 800)

    worker = running(worker_command("images"), settings_env(settings), tmp_path / "worker.log")
    with open_stream(events_server.port, headers) as stream, worker:
        created = upload(client, headers, content)
        assert created.status_code == 201, created.json
        asset_id, assets, usage = created.json["id"], [], []
        while not assets or assets[-1]["status"] not in ("ready", "failed"):
            event = stream.next(timeout=60)
            (assets if event.type == "asset" else usage if event.type == "usage" else []).append(event.body)

    assert [body["status"] for body in assets] == ["pending", "processing", "ready"]
    assert {body["id"] for body in assets} == {asset_id}
    assert usage[0]["storage"]["usedBytes"] == len(content)
    ready = assets[-1]
    shown = client.get(f"/v1/assets/{asset_id}", headers=headers).json
    assert {**ready, "urls": None} == {**shown, "urls": None}
    assert (ready["width"], ready["height"]) == (1200, 800) and ready["placeholder"]
    with client.get(ready["urls"]["thumbnail"]) as response:
        assert response.status_code == 200
        thumbnail = Image.open(io.BytesIO(response.get_data()))
    assert (thumbnail.format, max(thumbnail.size)) == ("WEBP", 400)
