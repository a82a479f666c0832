"""Project thumbnail scheduling: one render per project until it is due, one user's renders spaced apart."""

from __future__ import annotations

import uuid
from itertools import pairwise

import pytest

from core.taskqueue import MAX_COUNTDOWN_SECONDS
from models.thumbnail_schedule import HOLD_SECONDS, release, render_delay

T0 = 1_900_000_000_000  # a fixed moment in milliseconds, so time moves under the test's control
DEBOUNCE, INTERVAL = 5.0, 2.0


@pytest.fixture
def schedule(settings, redis_client):
    def delay(user_id: str, project_id: uuid.UUID, now_ms: int, interval: float = INTERVAL) -> float | None:
        return render_delay(
            redis_client, settings.redis_key_prefix, user_id, project_id, DEBOUNCE, interval, now_ms
        )

    return delay


@pytest.fixture
def user():
    return f"user_{uuid.uuid4().hex}"


def test_a_lone_project_renders_one_debounce_after_its_first_save(schedule, user):
    project = uuid.uuid4()

    assert schedule(user, project, T0) == DEBOUNCE


def test_saves_until_the_scheduled_render_starts_schedule_nothing_and_the_next_one_after_does(
    schedule, settings, redis_client, user
):
    project = uuid.uuid4()
    schedule(user, project, T0)

    before_due = [schedule(user, project, T0 + ms) for ms in range(500, 5000, 500)]
    # Due, but waiting in a busy queue: it will still draw these saves.
    queued = [schedule(user, project, T0 + ms) for ms in range(5000, 65_000, 5000)]
    release(redis_client, settings.redis_key_prefix, user, project)  # the render starts
    after_start = schedule(user, project, T0 + 65_000)

    assert before_due == [None] * 9
    assert queued == [None] * 12
    assert after_start == DEBOUNCE


def test_a_render_never_started_is_presumed_lost_after_the_hold_and_the_next_save_schedules_another(
    schedule, user
):
    project = uuid.uuid4()
    schedule(user, project, T0)
    due = T0 + round(DEBOUNCE * 1000)
    hold = round(HOLD_SECONDS * 1000)

    assert schedule(user, project, due + hold - 1) is None
    assert schedule(user, project, due + hold) == DEBOUNCE


def test_a_users_hundred_autosaving_projects_get_renders_one_interval_apart(schedule, user):
    projects = [uuid.uuid4() for _ in range(100)]

    delays = [schedule(user, project, T0) for project in projects]

    assert delays == [DEBOUNCE + INTERVAL * n for n in range(100)]


def test_a_user_autosaving_a_hundred_projects_for_ten_minutes_is_bounded_and_renders_every_project(
    schedule, settings, redis_client, user
):
    projects = [uuid.uuid4() for _ in range(100)]
    due: dict[uuid.UUID, list[int]] = {project: [] for project in projects}
    minutes = 10

    # Every project saved every 5 s, the saves spread over the 5 s, as a hundred open tabs would; each
    # render starts when it is due (an idle worker).
    for tick in range(0, minutes * 60_000, 5_000):
        for n, project in enumerate(projects):
            now = T0 + tick + n * 50
            if due[project] and due[project][-1] <= now:
                release(redis_client, settings.redis_key_prefix, user, project)
            delay = schedule(user, project, now)
            if delay is not None:
                due[project].append(now + round(delay * 1000))

    times = sorted(time for project_times in due.values() for time in project_times)
    assert all(later - earlier >= INTERVAL * 1000 for earlier, later in pairwise(times))
    due_in_those_minutes = [time for time in times if time < T0 + minutes * 60_000]
    assert len(due_in_those_minutes) <= minutes * 60 / INTERVAL  # 300 renders, not 12,000
    assert all(due[project] for project in projects)  # none starved: each project renders in turn


def test_one_users_backlog_does_not_delay_another_users_first_render(schedule, user):
    for _ in range(50):
        schedule(user, uuid.uuid4(), T0)

    assert schedule(f"{user}-other", uuid.uuid4(), T0) == DEBOUNCE


def test_no_render_is_scheduled_further_ahead_than_the_broker_lets_a_message_wait(schedule, user):
    delays = [schedule(user, uuid.uuid4(), T0, interval=60.0) for _ in range(30)]

    assert max(delays) == MAX_COUNTDOWN_SECONDS
    assert delays[:10] == [DEBOUNCE + 60.0 * n for n in range(10)]


def test_the_server_clock_is_used_when_no_time_is_given(settings, redis_client, user):
    delay = render_delay(redis_client, settings.redis_key_prefix, user, uuid.uuid4(), DEBOUNCE, INTERVAL)

    assert delay == DEBOUNCE
