"""Asset domain: creation with a reservation, deletion with an outbox, reconciliation and purging."""

from __future__ import annotations

import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.asset_lifecycle import create_upload
from models.assets import (
    decode_cursor,
    delete_asset,
    encode_cursor,
    purge_pending_deletions,
    reconcile_storage_usage,
)
from models.errors import BadRequest, NotFound, QuotaExceeded, StorageError
from models.plans import MIB
from models.storage import make_storage
from models.tables import Asset, PendingDeletion, User
from models.users import ensure_user


def new_asset(session, user_id: str, size: int = 100) -> Asset:
    ensure_user(session, user_id)
    asset_id = uuid.uuid4()
    return create_upload(
        session,
        asset_id=asset_id,
        user_id=user_id,
        asset_type="image",
        storage_key=f"originals/t/{asset_id}.png",
        mime_type="image/png",
        size_bytes=size,
        generation={},
    )


def test_creating_an_asset_charges_its_bytes(session):
    asset = new_asset(session, "user_create", 1234)

    assert session.get(User, "user_create").storage_used_bytes == 1234
    assert asset.status == "pending" and asset.created_at is not None


def test_an_asset_that_does_not_fit_is_not_created(session):
    ensure_user(session, "user_no_room")

    with pytest.raises(QuotaExceeded):
        new_asset(session, "user_no_room", 500 * MIB + 1)

    assert session.scalars(select(Asset).where(Asset.user_id == "user_no_room")).all() == []


def test_deleting_gives_the_bytes_back_and_outboxes_every_object(session):
    asset = new_asset(session, "user_delete", 500)
    asset.thumbnail_key, asset.poster_key = "renditions/a/thumbnail.webp", "renditions/a/poster.webp"
    session.flush()

    delete_asset(session, "user_delete", str(asset.id))

    assert session.get(User, "user_delete").storage_used_bytes == 0
    assert session.get(Asset, asset.id) is None
    outboxed = set(session.scalars(select(PendingDeletion.storage_key)))
    assert {asset.storage_key, "renditions/a/thumbnail.webp", "renditions/a/poster.webp"} <= outboxed


def test_nobody_can_delete_someone_elses_asset(session):
    asset = new_asset(session, "user_keeper")

    with pytest.raises(NotFound):
        delete_asset(session, "user_thief", str(asset.id))
    assert session.get(User, "user_keeper").storage_used_bytes == 100


def test_reconcile_fixes_drifted_users_and_reports_them(session):
    new_asset(session, "user_drift", 300)
    new_asset(session, "user_drift", 200)
    new_asset(session, "user_exact", 50)
    ensure_user(session, "user_ghost_bytes").storage_used_bytes = 999
    session.get(User, "user_drift").storage_used_bytes = 10
    session.flush()

    fixed = {(d.user_id, d.recorded_bytes, d.actual_bytes) for d in reconcile_storage_usage(session)}

    assert {("user_drift", 10, 500), ("user_ghost_bytes", 999, 0)} <= fixed
    assert not any(user_id == "user_exact" for user_id, *_ in fixed)
    assert session.get(User, "user_drift").storage_used_bytes == 500
    assert session.get(User, "user_ghost_bytes").storage_used_bytes == 0
    assert reconcile_storage_usage(session) == []


LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


def _someone_waits_for_a_lock(engine) -> bool:
    with engine.connect() as observer:
        for _ in range(100):
            if observer.scalar(LOCK_WAITERS):
                return True
            # pg_stat_activity is a snapshot taken once per transaction: each look needs a fresh one.
            observer.rollback()
            time.sleep(0.05)
    return False


def test_reconcile_waits_for_an_uncommitted_upload_and_keeps_its_charge(engine):
    with Session(engine) as setup, setup.begin():
        ensure_user(setup, "user_reconcile_race").storage_used_bytes = 5  # drifted: charged for nothing

    def reconcile() -> list[tuple[str, int, int]]:
        with Session(engine) as session, session.begin():
            return [(d.user_id, d.recorded_bytes, d.actual_bytes) for d in reconcile_storage_usage(session)]

    try:
        with Session(engine) as upload, ThreadPoolExecutor(max_workers=1) as pool:
            upload.begin()
            new_asset(upload, "user_reconcile_race", 100)  # reserved and inserted, not yet committed
            running = pool.submit(reconcile)
            assert _someone_waits_for_a_lock(engine)
            upload.commit()
            fixed = running.result(timeout=10)
        assert ("user_reconcile_race", 105, 100) in fixed
        with Session(engine) as session:
            assert session.get(User, "user_reconcile_race").storage_used_bytes == 100
    finally:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE user_id = 'user_reconcile_race'"))


def test_purge_deletes_outboxed_objects_then_their_rows_and_is_idempotent(session, settings):
    storage = make_storage(settings)
    keys = [f"renditions/{uuid.uuid4()}/thumbnail.webp" for _ in range(3)]
    for key in keys:
        storage.put(key, io.BytesIO(b"webp"), content_type="image/webp")
    session.add_all(PendingDeletion(storage_key=key) for key in keys)
    session.add(PendingDeletion(storage_key=f"renditions/{uuid.uuid4()}/never-written.webp"))
    session.flush()

    assert purge_pending_deletions(session, storage, limit=1000) >= 4
    assert [storage.head(key) for key in keys] == [None, None, None]
    assert session.scalars(select(PendingDeletion)).all() == []
    assert purge_pending_deletions(session, storage) == 0


class _DownStorage:
    def delete(self, key):
        raise StorageError("unreachable")


def test_purge_keeps_the_outbox_when_storage_is_down(session):
    session.add(PendingDeletion(storage_key="originals/x/y.png"))
    session.flush()

    assert purge_pending_deletions(session, _DownStorage()) == 0
    assert session.scalars(select(PendingDeletion.storage_key)).all() == ["originals/x/y.png"]


def test_a_cursor_round_trips_and_garbage_is_a_bad_request(session):
    asset = new_asset(session, "user_cursor")

    assert decode_cursor(encode_cursor(asset)) == (asset.created_at, asset.id)
    for garbage in ("", "!!!", "bm9wZQ", "MTIzOm5vdC1hLXV1aWQ"):
        with pytest.raises(BadRequest):
            decode_cursor(garbage)
