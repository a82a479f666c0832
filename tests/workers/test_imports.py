"""The import task: a remote file becomes a stored, charged original, or a failed asset with a code."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from core import taskqueue
from models.asset_lifecycle import create_import
from models.assets import delete_asset
from models.storage import make_storage
from models.storage.keys import user_originals_prefix
from models.tables import Asset, Plan, User
from models.users import ensure_user
from tests.queues import take
from tests.web.uploading import queued, stored_keys
from tests.workers.remote_files import IMAGE, remote_files
from workers import context as worker_context
from workers.imports import import_remote
from workers.maintenance import requeue_stuck_assets


@pytest.fixture(scope="module")
def server():
    with remote_files() as running:
        yield running


def install(settings, sessions, **overrides):
    chosen = settings.model_copy(update=overrides)
    return worker_context.install(
        worker_context.WorkerContext(
            settings=chosen,
            engine=None,
            sessions=sessions,
            storage=make_storage(chosen),
        )
    )


@pytest.fixture
def loopback_allowed(settings, sessions):
    return install(
        settings, sessions, import_allow_http=True, import_allow_loopback=True, import_timeout_seconds=1.0
    )


@pytest.fixture
def loopback_refused(settings, sessions):
    return install(settings, sessions, import_allow_http=True, import_allow_loopback=False)


def pending_import(session, user_id: str, url: str, asset_type: str = "image") -> str:
    ensure_user(session, user_id)
    asset = create_import(session, user_id=user_id, asset_type=asset_type, source_url=url, generation={})
    session.commit()
    return str(asset.id)


def outcome(session, asset_id: str, user_id: str, storage) -> tuple:
    session.expire_all()
    asset = session.get(Asset, uuid.UUID(asset_id))
    used = session.get(User, user_id).storage_used_bytes
    return asset.status, asset.error, used, stored_keys(storage, user_id)


def test_an_import_stores_the_file_charges_it_and_queues_its_renditions(
    loopback_allowed, server, session, redis_client, settings
):
    asset_id = pending_import(session, "user_import_ok", server.url("/image.jpg"))

    import_remote(asset_id)

    session.expire_all()
    asset = session.get(Asset, uuid.UUID(asset_id))
    assert (asset.status, asset.mime_type, asset.size_bytes) == ("pending", "image/jpeg", len(IMAGE))
    assert asset.storage_key.startswith(f"{user_originals_prefix('user_import_ok')}{asset_id}-")
    assert asset.storage_key.endswith(".jpg")
    assert session.get(User, "user_import_ok").storage_used_bytes == len(IMAGE)
    with loopback_allowed.storage.open(asset.storage_key) as stored:
        assert stored.read() == IMAGE
    assert (taskqueue.MAKE_IMAGE_RENDITIONS, [asset_id]) in queued(redis_client, settings, "images")


def test_running_an_import_twice_stores_and_charges_once(loopback_allowed, server, session):
    asset_id = pending_import(session, "user_import_twice", server.url("/image.jpg"))

    import_remote(asset_id)
    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_twice", loopback_allowed.storage)
    assert (status, error, used, len(keys)) == ("pending", None, len(IMAGE), 1)


def test_an_import_whose_asset_was_deleted_does_nothing(loopback_allowed, server, session):
    asset_id = pending_import(session, "user_import_gone", server.url("/image.jpg"))
    session.delete(session.get(Asset, uuid.UUID(asset_id)))
    session.commit()

    import_remote(asset_id)

    assert stored_keys(loopback_allowed.storage, "user_import_gone") == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/hop/6", "too-many-redirects"),
        ("/to-private", "blocked-address"),
        ("/to-metadata", "blocked-address"),
        ("/to-file", "scheme-not-allowed"),
        ("/declared-huge", "too-large"),
        ("/page.html", "unsupported-format"),
        ("/missing", "download-failed"),
        ("/slow", "timeout"),
        ("/hang", "timeout"),
        ("/length-superscript", "download-failed"),
        ("/to-broken-ipv6", "download-failed"),
    ],
)
def test_a_refused_import_fails_with_its_code_charges_nothing_and_stores_nothing(
    loopback_allowed, server, session, path, code
):
    user_id = f"user_import_{code}"
    asset_id = pending_import(session, user_id, server.url(path))

    import_remote(asset_id)

    assert outcome(session, asset_id, user_id, loopback_allowed.storage) == ("failed", code, 0, [])


def test_a_body_past_the_plan_limit_without_a_length_fails_as_too_large(loopback_allowed, server, session):
    session.execute(update(Plan).where(Plan.key == "free").values(max_upload_bytes=len(IMAGE) + 1000))
    asset_id = pending_import(session, "user_import_stream", server.url("/undeclared-big"))

    import_remote(asset_id)

    assert outcome(session, asset_id, "user_import_stream", loopback_allowed.storage) == (
        "failed",
        "too-large",
        0,
        [],
    )


def test_an_image_announced_as_a_video_fails_as_a_type_mismatch(loopback_allowed, server, session):
    asset_id = pending_import(session, "user_import_mismatch", server.url("/image.jpg"), asset_type="video")

    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_mismatch", loopback_allowed.storage)
    assert (status, error, used, keys) == ("failed", "type-mismatch", 0, [])


def test_an_import_that_does_not_fit_the_quota_fails_and_leaves_no_object(loopback_allowed, server, session):
    asset_id = pending_import(session, "user_import_full", server.url("/image.jpg"))
    session.get(User, "user_import_full").storage_used_bytes = 500 * 1024 * 1024 - 10
    session.commit()

    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_full", loopback_allowed.storage)
    assert (status, error, used, keys) == ("failed", "quota-exceeded", 500 * 1024 * 1024 - 10, [])


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost"],
)
def test_without_the_loopback_setting_local_and_private_hosts_are_refused(
    loopback_refused, server, session, host
):
    user_id = f"user_ssrf_{uuid.uuid4().hex[:6]}"
    asset_id = pending_import(session, user_id, server.url("/image.jpg", host=host))
    requests_before = len(server.hosts_seen)

    import_remote(asset_id)

    assert outcome(session, asset_id, user_id, loopback_refused.storage) == (
        "failed",
        "blocked-address",
        0,
        [],
    )
    assert len(server.hosts_seen) == requests_before


def test_http_is_refused_unless_the_development_setting_allows_it(settings, sessions, server, session):
    context = install(settings, sessions, import_allow_http=False, import_allow_loopback=True)
    asset_id = pending_import(session, "user_import_http", server.url("/image.jpg"))

    import_remote(asset_id)

    assert outcome(session, asset_id, "user_import_http", context.storage) == (
        "failed",
        "scheme-not-allowed",
        0,
        [],
    )


def test_import_arguments_survive_a_json_round_trip():
    arguments = [str(uuid.uuid4())]

    assert json.loads(json.dumps(arguments)) == arguments


def test_each_download_attempt_is_counted_and_a_stored_original_starts_renditions_afresh(
    loopback_allowed, server, session
):
    failed_id = pending_import(session, "user_import_attempts", server.url("/missing"))
    stored_id = pending_import(session, "user_import_attempts", server.url("/image.jpg"))

    import_remote(failed_id)
    import_remote(stored_id)

    session.expire_all()
    attempts = {key: session.get(Asset, uuid.UUID(key)).attempts for key in (failed_id, stored_id)}
    assert attempts == {failed_id: 1, stored_id: 0}


def test_a_stalled_import_goes_back_to_the_import_task_not_to_renditions(
    loopback_allowed, server, session, redis_client, settings
):
    asset_id = pending_import(session, "user_import_stalled", server.url("/image.jpg"))
    session.execute(
        update(Asset)
        .where(Asset.id == uuid.UUID(asset_id))
        .values(updated_at=datetime.now(UTC) - timedelta(hours=1))
    )
    session.commit()

    requeue_stuck_assets()

    assert len(take(redis_client, settings, "images", taskqueue.IMPORT_REMOTE_ASSET, asset_id)) == 1
    assert take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, asset_id) == []


class RacedByAnotherCopy:
    """The real storage, except that the first put first lets a duplicate delivery run the whole import."""

    def __init__(self, storage, asset_id: str) -> None:
        self.storage, self.asset_id, self.raced = storage, asset_id, False

    def put(self, key, stream, *, content_type):
        if not self.raced:
            self.raced = True
            import_remote(self.asset_id)
        return self.storage.put(key, stream, content_type=content_type)

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_two_copies_of_an_import_at_once_keep_the_winners_original_and_one_object(
    loopback_allowed, server, session
):
    asset_id = pending_import(session, "user_import_race", server.url("/image.jpg"))
    storage = loopback_allowed.storage
    loopback_allowed.storage = RacedByAnotherCopy(storage, asset_id)

    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_race", storage)
    assert (status, error, used) == ("pending", None, len(IMAGE))
    assert keys == [session.get(Asset, uuid.UUID(asset_id)).storage_key]
    with storage.open(keys[0]) as stored:
        assert stored.read() == IMAGE


class DeletedWhileStoring:
    """The real storage, except that the user deletes the asset just after the download is stored."""

    def __init__(self, storage, sessions, user_id: str, asset_id: str) -> None:
        self.storage, self.sessions, self.user_id, self.asset_id = storage, sessions, user_id, asset_id

    def put(self, key, stream, *, content_type):
        stored = self.storage.put(key, stream, content_type=content_type)
        with self.sessions.begin() as session:
            delete_asset(session, self.user_id, self.asset_id)
        return stored

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_an_import_deleted_while_downloading_charges_nothing_and_leaves_no_object(
    loopback_allowed, server, session, sessions
):
    asset_id = pending_import(session, "user_import_deleted", server.url("/image.jpg"))
    storage = loopback_allowed.storage
    loopback_allowed.storage = DeletedWhileStoring(storage, sessions, "user_import_deleted", asset_id)

    import_remote(asset_id)

    session.expire_all()
    assert session.get(Asset, uuid.UUID(asset_id)) is None
    assert session.get(User, "user_import_deleted").storage_used_bytes == 0
    assert stored_keys(storage, "user_import_deleted") == []


def test_an_import_redelivered_after_killing_its_worker_every_time_ends_failed_without_a_download(
    loopback_allowed, server, session
):
    asset_id = pending_import(session, "user_import_crashes", server.url("/image.jpg"))
    budget = loopback_allowed.settings.max_processing_attempts
    session.execute(update(Asset).where(Asset.id == uuid.UUID(asset_id)).values(attempts=budget))
    session.commit()
    requests_before = len(server.hosts_seen)

    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_crashes", loopback_allowed.storage)
    assert (status, error, used, keys) == ("failed", "too-many-attempts", 0, [])
    assert len(server.hosts_seen) == requests_before


class PutsRecorded:
    """A real storage that also remembers the keys put into it."""

    def __init__(self, inner) -> None:
        self.inner, self.puts = inner, []

    def put(self, key, stream, *, content_type):
        self.puts.append(key)
        return self.inner.put(key, stream, content_type=content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_download_stops_at_the_users_room_and_stores_nothing(loopback_allowed, server, session):
    recording = PutsRecorded(loopback_allowed.storage)
    loopback_allowed.storage = recording
    asset_id = pending_import(session, "user_import_room", server.url("/undeclared-big"))
    quota = session.get(Plan, "free").storage_quota_bytes
    session.get(User, "user_import_room").storage_used_bytes = quota - len(IMAGE) - 1000
    session.commit()

    import_remote(asset_id)

    status, error, used, keys = outcome(session, asset_id, "user_import_room", recording.inner)
    assert (status, error, used, keys) == ("failed", "quota-exceeded", quota - len(IMAGE) - 1000, [])
    assert recording.puts == []
