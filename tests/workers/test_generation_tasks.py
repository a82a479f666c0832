"""The beat task that resets generation counters at the end of each user's cycle."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core import taskqueue
from models.tables import User
from models.users import ensure_user
from workers.generation_tasks import reset_generation_cycles
from workers.schedule import beat_schedule


def test_the_task_zeroes_counters_of_ended_cycles_and_moves_them_forward(worker_context, sessions):
    past = datetime.now(UTC) - timedelta(days=40)
    with sessions.begin() as session:
        ensure_user(session, "user_lapsed")
        session.execute(
            update(User)
            .where(User.user_id == "user_lapsed")
            .values(
                created_at=past,
                billing_cycle_start=past,
                billing_cycle_end=past + timedelta(days=30),
                images_used_in_period=9,
            )
        )

    reset_generation_cycles()
    reset_generation_cycles()

    with sessions() as session:
        user = session.get(User, "user_lapsed")
        assert user.images_used_in_period == 0
        assert user.billing_cycle_start <= datetime.now(UTC) < user.billing_cycle_end


def test_beat_sends_the_task_hourly_to_the_maintenance_queue_with_nothing_but_json():
    entry = beat_schedule()[taskqueue.RESET_GENERATION_CYCLES]

    assert reset_generation_cycles.name == entry["task"] == taskqueue.RESET_GENERATION_CYCLES
    assert (entry["options"]["queue"], entry["schedule"]) == ("maintenance", 3600)
    assert json.loads(json.dumps(entry)) == entry
    assert not inspect.signature(reset_generation_cycles.run).parameters
