"""When a saved project's thumbnail renders: debounced per project, spaced per user (SPEC §15).

Per project, the first save schedules a render `debounce` seconds ahead and holds a key until that render
starts (`release`), so the saves in between schedule nothing: that render re-reads the row and draws the
newest canvas. A render waiting in a backed-up queue therefore absorbs the saves made while it waits, and
the queue holds at most one render per project however far behind the workers are; a render still not
started `HOLD_SECONDS` after it was due is presumed lost, and the next save schedules another.
Per user, render slots are at least `interval` apart: a user autosaving N projects at once gets their
renders at one per `interval` (each project in turn, none dropped), while a lone project still renders
`debounce` after its save. One user's scheduled renders are therefore at most one per project, and
their rate at most 1 / `interval` whatever they save. Time comes from the Redis server, so API
processes with skewed clocks agree.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from core.taskqueue import MAX_COUNTDOWN_SECONDS

SCRIPT = (Path(__file__).with_name("thumbnail_schedule.lua")).read_text()
HOLD_SECONDS = 300.0


def project_key(prefix: str, user_id: str, project_id: uuid.UUID) -> str:
    # One hash tag per user keeps both keys of the script on one slot of a Redis Cluster.
    return f"{prefix}project-thumb:{{{user_id}}}:{project_id}"


def user_key(prefix: str, user_id: str) -> str:
    return f"{prefix}project-thumb:{{{user_id}}}"


def render_delay(
    redis_client: Any,
    prefix: str,
    user_id: str,
    project_id: uuid.UUID,
    debounce: float,
    interval: float,
    now_ms: int = 0,
) -> float | None:
    """Seconds until the render this save needs should run; None when one already scheduled draws it.

    `now_ms=0` takes the time from the Redis server; tests pass their own.
    """
    script = redis_client.register_script(SCRIPT)
    keys = [project_key(prefix, user_id, project_id), user_key(prefix, user_id)]
    args = [_ms(debounce), _ms(interval), _ms(MAX_COUNTDOWN_SECONDS), now_ms, _ms(HOLD_SECONDS)]
    delay_ms = int(script(keys=keys, args=args))
    return None if delay_ms < 0 else delay_ms / 1000


def release(redis_client: Any, prefix: str, user_id: str, project_id: uuid.UUID) -> None:
    """The project's scheduled render has started: saves from now on schedule a render of their own."""
    redis_client.delete(project_key(prefix, user_id, project_id))


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
