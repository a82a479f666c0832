"""Faults heal without an operator: a worker killed mid-thumbnail still leaves the asset ready."""

from __future__ import annotations

import io
import json
import os
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from core import taskqueue
from models.tables import Asset
from tests.processes import running, settings_env, wait_until, worker_command
from tests.workers.rendition_support import add_asset, asset, committed_assets
from workers import context
from workers.maintenance import requeue_stuck_assets

pytestmark = pytest.mark.e2e
USER = "user_fault"


@pytest.fixture(scope="module")
def slow_png() -> bytes:
    """A 9000 x 9000 PNG: about 1 MB stored, but seconds of decoding, so a kill lands mid-task."""
    ramp = np.tile(np.arange(9000, dtype=np.uint16)[None, :] % 256, (9000, 1)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.stack([ramp, ramp.T, ramp], axis=2)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture
def committed(settings, engine):
    with committed_assets(settings, engine, USER) as made:
        yield made


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (the prefork pool of a worker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _start_and_wait_until_processing(settings, sessions, asset_id: str, worker) -> list[int]:
    taskqueue.send(taskqueue.make_client(settings), taskqueue.MAKE_IMAGE_RENDITIONS, asset_id)
    wait_until(lambda: asset(sessions, asset_id).status == "processing", timeout=60, interval=0.02)
    return wait_until(lambda: _children(worker.pid), timeout=10)


def test_a_pool_child_killed_mid_thumbnail_is_replaced_and_the_task_redelivered(
    settings, committed, slow_png, tmp_path
):
    sessions, storage, created = committed
    asset_id = add_asset(sessions, storage, slow_png, ext="png", user_id=USER)
    created.append(asset_id)
    with running(worker_command("images"), settings_env(settings), tmp_path / "worker.log") as worker:
        children = _start_and_wait_until_processing(settings, sessions, asset_id, worker)
        for child in children:
            os.kill(child, signal.SIGKILL)

        wait_until(lambda: asset(sessions, asset_id).status in ("ready", "failed"), timeout=120)

    row = asset(sessions, asset_id)
    assert (row.status, row.error) == ("ready", None)
    # A second claim happened: the first run really died before it could finish.
    assert row.attempts >= 2
    assert row.thumbnail_key and storage.head(row.thumbnail_key) is not None


def test_a_whole_worker_killed_mid_thumbnail_is_healed_by_the_stuck_asset_sweep_and_a_fresh_worker(
    settings, engine, committed, slow_png, tmp_path
):
    sessions, storage, created = committed
    asset_id = add_asset(sessions, storage, slow_png, ext="png", user_id=USER)
    created.append(asset_id)
    env = settings_env(settings)
    with running(worker_command("images"), env, tmp_path / "dead-worker.log") as worker:
        children = _start_and_wait_until_processing(settings, sessions, asset_id, worker)
        # The machine dies: nobody is left to hand the message back, and the row says `processing`.
        os.kill(worker.pid, signal.SIGKILL)
        for child in children:
            os.kill(child, signal.SIGKILL)
        worker.wait()
    assert asset(sessions, asset_id).status == "processing"

    with sessions.begin() as session:  # as if the stall threshold had passed
        session.execute(
            update(Asset)
            .where(Asset.id == uuid.UUID(asset_id))
            .values(updated_at=datetime.now(UTC) - timedelta(minutes=settings.stuck_asset_minutes + 1))
        )
    previous = context._current
    context.install(
        context.WorkerContext(
            settings=settings, engine=engine, sessions=sessions, storage=storage,
        )
    )  # fmt: skip
    try:
        assert requeue_stuck_assets()["requeued"] >= 1
    finally:
        context._current = previous

    with running(worker_command("images"), env, tmp_path / "fresh-worker.log"):
        wait_until(lambda: asset(sessions, asset_id).status in ("ready", "failed"), timeout=120)

    row = asset(sessions, asset_id)
    assert (row.status, row.error) == ("ready", None)
    assert row.attempts == 2


def _rendition_succeeded_at(log_path: Path) -> datetime:
    """When the worker logged the (one) rendition task it ran as succeeded."""
    lines = (json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{"))
    done = next(
        line
        for line in lines
        if line.get("task_name") == taskqueue.MAKE_IMAGE_RENDITIONS and "succeeded" in line["event"]
    )
    return datetime.fromisoformat(done["timestamp"])


def test_a_worker_told_to_stop_mid_thumbnail_finishes_it_before_it_exits(
    settings, committed, slow_png, tmp_path
):
    sessions, storage, created = committed
    asset_id = add_asset(sessions, storage, slow_png, ext="png", user_id=USER)
    created.append(asset_id)
    log_path = tmp_path / "worker.log"
    with running(worker_command("images"), settings_env(settings), log_path) as worker:
        _start_and_wait_until_processing(settings, sessions, asset_id, worker)
        signalled_at = datetime.now(UTC)
        worker.send_signal(signal.SIGTERM)  # what honcho, docker stop and systemd send
        exit_code = worker.wait(timeout=120)
        status_at_exit = asset(sessions, asset_id).status

    row = asset(sessions, asset_id)
    assert exit_code == 0
    assert _rendition_succeeded_at(log_path) > signalled_at  # the task really was still running
    assert status_at_exit == "ready"  # finished by this worker before it exited, not handed on
    assert (row.attempts, row.error) == (1, None)
    assert row.thumbnail_key and storage.head(row.thumbnail_key) is not None


def test_a_worker_stopped_cold_mid_thumbnail_hands_the_task_back_to_the_next_worker(
    settings, committed, slow_png, tmp_path
):
    sessions, storage, created = committed
    asset_id = add_asset(sessions, storage, slow_png, ext="png", user_id=USER)
    created.append(asset_id)
    env = settings_env(settings)
    with running(worker_command("images"), env, tmp_path / "worker.log") as worker:
        _start_and_wait_until_processing(settings, sessions, asset_id, worker)
        worker.send_signal(signal.SIGQUIT)  # a second Ctrl-C, or an orchestrator out of patience
        worker.wait(timeout=60)
    assert asset(sessions, asset_id).status == "processing"

    with running(worker_command("images"), env, tmp_path / "next-worker.log"):
        wait_until(lambda: asset(sessions, asset_id).status in ("ready", "failed"), timeout=120)

    row = asset(sessions, asset_id)
    assert (row.status, row.error, row.attempts) == ("ready", None, 2)
