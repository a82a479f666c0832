"""enqueue(): follow-up work after commit never turns a committed request into an error."""

from __future__ import annotations

import socket
import uuid

from sqlalchemy import select

from models.tables import Asset, User
from tests.conftest import build_services
from tests.web.uploading import upload
from tests.workers.media.hostile_media import good_jpeg
from web.app import create_app


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_upload_with_the_broker_down_is_committed_and_left_for_maintenance(
    settings, engine, sessions, session, auth_header
):
    down = settings.model_copy(update={"celery_broker_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    client = create_app(down, build_services(down, engine, sessions)).test_client()
    content = good_jpeg(64, 48)

    response = upload(client, auth_header("user_broker_down"), content)

    assert response.status_code == 201, response.json
    asset = session.scalars(select(Asset).where(Asset.id == uuid.UUID(response.json["id"]))).one()
    assert asset.status == "pending"  # the stuck-asset job sends it on once the broker is back
    assert session.get(User, "user_broker_down").storage_used_bytes == len(content)
