"""The beat task that resets generation counters at the end of each user's cycle."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from models import taskqueue
from models.tables import User
from models.users import ensure_user
from workers.generation_tasks import reset_generation_cycles


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


def test_the_task_is_routed_to_the_maintenance_queue_and_takes_json_safe_arguments():
    assert taskqueue.queue_for(taskqueue.RESET_GENERATION_CYCLES) == "maintenance"
    assert reset_generation_cycles.name == taskqueue.RESET_GENERATION_CYCLES
    assert json.loads(json.dumps([])) == []
