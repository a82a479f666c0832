"""The lifecycle every media task shares: claim, work, and one final outcome on the row."""

from __future__ import annotations

import io
import uuid

import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import update

from core import taskqueue
from core.settings import media_limits
from models.assets import delete_asset
from models.errors import ObjectMissing, StorageError
from models.storage.keys import rendition_key
from models.tables import Asset
from tests.processes import worker_app_facts
from tests.workers.media.hostile_media import good_jpeg
from tests.workers.rendition_support import add_asset, asset, rendition_keys, storage_used
from workers.images import render_image_asset
from workers.media.errors import MediaRejected
from workers.policy import TRANSIENT_RETRIES
from workers.renditions import Renditions, render_asset

THUMBNAIL = b"RIFF-thumbnail-bytes"


def makes(
    outcome: Renditions | None = None, *, raises: BaseException | None = None, calls: list | None = None
):
    """A stand-in for the media work: records that it ran, then returns or raises."""

    def make(context, claim, limits):
        if calls is not None:
            calls.append(claim)
        if raises is not None:
            raise raises
        return outcome or Renditions(
            {"thumbnail": THUMBNAIL}, {"width": 10, "height": 20, "placeholder": "p"}
        )

    return make


@pytest.fixture
def pending(worker_context, sessions):
    return add_asset(sessions, worker_context.storage, b"original-bytes")


def test_media_limits_come_from_settings(settings):
    limits = media_limits(settings.model_copy(update={"max_dimension": 123, "max_image_pixels": 456}))

    assert (limits.max_dimension, limits.max_pixels) == (123, 456)
    assert limits.max_video_seconds == settings.max_video_seconds


def test_a_pending_asset_ends_ready_pointing_at_its_stored_renditions(worker_context, sessions, pending):
    assert render_asset(pending, makes()) == "ready"

    row = asset(sessions, pending)
    assert (row.status, row.error, row.attempts) == ("ready", None, 1)
    assert (row.width, row.height, row.placeholder) == (10, 20, "p")
    assert rendition_keys(worker_context.storage, pending) == {row.thumbnail_key}
    with worker_context.storage.open(row.thumbnail_key) as stream:
        assert stream.read() == THUMBNAIL
    assert worker_context.storage.head(row.thumbnail_key).content_type == "image/webp"


def test_a_poster_is_also_the_thumbnail_of_a_video(worker_context, sessions, pending):
    render_asset(pending, makes(Renditions({"poster": b"poster"})))

    row = asset(sessions, pending)
    assert row.poster_key is not None
    assert row.thumbnail_key == row.poster_key


def test_a_second_run_of_a_finished_asset_does_nothing(worker_context, sessions, pending):
    render_asset(pending, makes())
    before = asset(sessions, pending)
    calls = []

    assert render_asset(pending, makes(calls=calls)) is None

    after = asset(sessions, pending)
    assert calls == []
    assert (after.thumbnail_key, after.attempts) == (before.thumbnail_key, 1)


def crashed_mid_attempt(worker_context, sessions, pending: str) -> str:
    """Leave `pending` as a killed first attempt would: `processing`, with a half-written rendition."""
    dead = rendition_key(pending, "thumbnail-1-deadbeef")
    worker_context.storage.put(dead, io.BytesIO(b"half"), content_type="image/webp")
    with sessions.begin() as session:
        session.execute(
            update(Asset).where(Asset.id == uuid.UUID(pending)).values(status="processing", attempts=1)
        )
    return dead


def test_a_run_after_a_crash_completes_the_job_and_drops_the_dead_attempts_objects(
    worker_context, sessions, pending
):
    dead = crashed_mid_attempt(worker_context, sessions, pending)

    assert render_asset(pending, makes()) == "ready"

    row = asset(sessions, pending)
    assert row.attempts == 2
    assert row.thumbnail_key != dead
    assert rendition_keys(worker_context.storage, pending) == {row.thumbnail_key}


def test_refused_media_fails_with_its_code_and_keeps_the_original_and_the_charge(
    worker_context, sessions, pending
):
    charged = storage_used(sessions)

    assert render_asset(pending, makes(raises=MediaRejected("corrupt", "truncated"))) == "failed"

    row = asset(sessions, pending)
    assert (row.status, row.error, row.thumbnail_key) == ("failed", "corrupt", None)
    assert worker_context.storage.head(row.storage_key) is not None
    assert storage_used(sessions) == charged


def test_an_attempt_that_loses_the_row_to_another_deletes_what_it_stored(worker_context, sessions, pending):
    winner = rendition_key(pending, "thumbnail-9-00000000")

    def other_attempt_finishes_first(context, claim, limits):
        with sessions.begin() as session:
            session.execute(
                update(Asset).where(Asset.id == claim.asset_id).values(status="ready", thumbnail_key=winner)
            )
        return Renditions({"thumbnail": THUMBNAIL, "preview": b"preview"})

    assert render_asset(pending, other_attempt_finishes_first) is None

    assert asset(sessions, pending).thumbnail_key == winner
    assert rendition_keys(worker_context.storage, pending) == set()


def test_an_asset_deleted_mid_task_is_not_resurrected_and_keeps_no_renditions(
    worker_context, sessions, pending
):
    def user_deletes_it_meanwhile(context, claim, limits):
        with sessions.begin() as session:
            delete_asset(session, "user_media", pending)
        return Renditions({"thumbnail": THUMBNAIL, "preview": b"preview"})

    assert render_asset(pending, user_deletes_it_meanwhile) is None

    with sessions() as session:
        assert session.get(Asset, uuid.UUID(pending)) is None
    assert storage_used(sessions) == 0
    assert rendition_keys(worker_context.storage, pending) == set()


class FailingPuts:
    """The real storage, except that the nth put fails as a flaky backend would."""

    def __init__(self, storage, fail_on: int) -> None:
        self.storage, self.fail_on, self.puts = storage, fail_on, 0

    def put(self, key, stream, *, content_type):
        self.puts += 1
        if self.puts == self.fail_on:
            raise StorageError("connection reset")
        return self.storage.put(key, stream, content_type=content_type)

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_a_storage_error_while_storing_leaves_nothing_behind_and_propagates_for_a_retry(
    worker_context, sessions, pending
):
    storage = worker_context.storage
    worker_context.storage = FailingPuts(storage, fail_on=2)

    with pytest.raises(StorageError):
        render_asset(pending, makes(Renditions({"thumbnail": THUMBNAIL, "preview": b"preview"})))

    row = asset(sessions, pending)
    assert (row.status, row.thumbnail_key, row.preview_key) == ("processing", None, None)
    assert rendition_keys(storage, pending) == set()


def test_the_retry_after_a_transient_storage_error_finishes_the_asset(worker_context, sessions, pending):
    with pytest.raises(StorageError):
        render_asset(pending, makes(raises=StorageError("timeout")))

    assert render_asset(pending, makes()) == "ready"
    assert asset(sessions, pending).attempts == 2


class BrokenReads:
    """The real storage, except that reading an object fails as a backend that is down would."""

    def __init__(self, storage) -> None:
        self.storage = storage

    def open(self, key):
        raise StorageError("still down")

    def __getattr__(self, name):
        return getattr(self.storage, name)


def test_a_storage_error_before_the_last_retry_leaves_the_asset_to_the_retry(worker_context, sessions):
    jpeg = add_asset(sessions, worker_context.storage, good_jpeg(64, 48), ext="jpg")
    worker_context.storage = BrokenReads(worker_context.storage)

    with pytest.raises(Retry):
        render_image_asset.apply(args=[jpeg], retries=TRANSIENT_RETRIES - 1, throw=True)

    assert (asset(sessions, jpeg).status, asset(sessions, jpeg).error) == ("processing", None)


def test_the_last_retry_of_a_storage_error_fails_the_asset(worker_context, sessions):
    jpeg = add_asset(sessions, worker_context.storage, good_jpeg(64, 48), ext="jpg")
    worker_context.storage = BrokenReads(worker_context.storage)

    # The task's own request says which try this is, as it does when the worker runs a retry.
    with pytest.raises(StorageError):
        render_image_asset.apply(args=[jpeg], retries=TRANSIENT_RETRIES, throw=True)

    row = asset(sessions, jpeg)
    assert (row.status, row.error) == ("failed", "storage-unavailable")


@pytest.mark.parametrize(
    ("raised", "code"),
    [(SoftTimeLimitExceeded(), "timeout"), (ObjectMissing("originals/x"), "original-missing")],
)
def test_a_time_limit_or_a_missing_original_fails_the_asset(worker_context, sessions, pending, raised, code):
    assert render_asset(pending, makes(raises=raised)) == "failed"

    assert asset(sessions, pending).error == code


def test_an_attempt_killed_at_its_hard_time_limit_fails_the_asset_as_timeout(
    worker_context, sessions, pending
):
    crashed_mid_attempt(worker_context, sessions, pending)

    # What the worker's main process calls once it has killed the pool process running the task.
    render_image_asset.on_failure(TimeLimitExceeded(90), "task-id", [pending], {}, None)

    row = asset(sessions, pending)
    assert (row.status, row.error) == ("failed", "timeout")
    assert rendition_keys(worker_context.storage, pending) == set()


def test_a_late_hard_time_limit_report_leaves_a_finished_asset_alone(worker_context, sessions, pending):
    render_asset(pending, makes())

    render_image_asset.on_failure(TimeLimitExceeded(90), "task-id", [pending], {}, None)
    render_image_asset.on_failure(ZeroDivisionError(), "task-id", [pending], {}, None)

    row = asset(sessions, pending)
    assert (row.status, row.error) == ("ready", None)
    assert rendition_keys(worker_context.storage, pending) == {row.thumbnail_key}


def test_a_bug_fails_the_asset_as_an_internal_error_and_is_not_swallowed(worker_context, sessions, pending):
    with pytest.raises(ZeroDivisionError):
        render_asset(pending, makes(raises=ZeroDivisionError()))

    assert asset(sessions, pending).error == "internal-error"


def test_an_asset_that_used_up_its_attempts_fails_without_more_work(worker_context, sessions, pending):
    budget = worker_context.settings.max_processing_attempts
    with sessions.begin() as session:
        session.execute(
            update(Asset).where(Asset.id == uuid.UUID(pending)).values(status="processing", attempts=budget)
        )
    calls = []

    assert render_asset(pending, makes(calls=calls)) is None

    row = asset(sessions, pending)
    assert calls == []
    assert (row.status, row.error) == ("failed", "too-many-attempts")


def test_a_deleted_asset_is_skipped_quietly(worker_context):
    calls = []

    assert render_asset(str(uuid.uuid4()), makes(calls=calls)) is None
    assert calls == []


def test_the_worker_app_registers_both_tasks_with_their_limits(settings):
    conf = worker_app_facts(
        settings,
        "{'tasks': {n: [t.soft_time_limit, t.time_limit, t.max_retries,"
        " [e.__name__ for e in t.autoretry_for]]"
        " for n, t in w.app.tasks.items() if n in ('images.make_renditions', 'videos.make_renditions')},"
        " 'memory': w.app.conf.worker_max_memory_per_child,"
        " 'visibility': w.app.conf.broker_transport_options['visibility_timeout']}",
    )

    assert conf["tasks"] == {
        taskqueue.MAKE_IMAGE_RENDITIONS: [60, 90, TRANSIENT_RETRIES, ["StorageError"]],
        taskqueue.MAKE_VIDEO_RENDITIONS: [240, 300, TRANSIENT_RETRIES, ["StorageError"]],
    }
    assert conf["visibility"] > taskqueue.LONGEST_TASK_SECONDS >= 300
    assert 0 < conf["memory"] <= 1024 * 1024  # KiB: recycled above 1 GiB at most
