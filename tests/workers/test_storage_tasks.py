"""Storage bookkeeping tasks called directly: usage reconciled and reported, deleted objects purged."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.tables import Asset, PendingDeletion, User
from tests.web.uploading import stored_keys, upload
from tests.workers.media.hostile_media import good_jpeg
from workers.storage_tasks import purge_deleted_objects, reconcile_storage


def test_reconcile_sets_usage_to_the_sum_of_asset_sizes_and_reports_the_drift(
    worker_context, client, auth_header, sessions
):
    headers = auth_header("user_drifted")
    content = good_jpeg(24, 24)
    assert upload(client, headers, content).status_code == 201
    with sessions.begin() as session:
        session.get(User, "user_drifted").storage_used_bytes = 7

    report = reconcile_storage()

    assert {"user_id": "user_drifted", "recorded_bytes": 7, "actual_bytes": len(content)} in report
    assert client.get("/v1/me/usage", headers=headers).json["storage"]["usedBytes"] == len(content)
    assert reconcile_storage() == []


def test_a_deleted_assets_original_is_removed_by_the_purge_task(
    worker_context, client, auth_header, sessions
):
    headers = auth_header("user_purged")
    created = upload(client, headers, good_jpeg(24, 24)).json
    with sessions() as session:
        key = session.scalar(select(Asset.storage_key).where(Asset.id == uuid.UUID(created["id"])))
    assert stored_keys(worker_context.storage, "user_purged") == [key]

    assert client.delete(f"/v1/assets/{created['id']}", headers=headers).status_code == 204
    assert stored_keys(worker_context.storage, "user_purged") == [key]  # removal is the task's job
    purged = purge_deleted_objects()

    assert purged >= 1
    assert stored_keys(worker_context.storage, "user_purged") == []
    with sessions() as session:
        assert session.scalars(select(PendingDeletion).where(PendingDeletion.storage_key == key)).all() == []
    assert purge_deleted_objects() == 0
