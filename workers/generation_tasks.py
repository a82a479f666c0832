"""Generation quota upkeep on the `maintenance` queue."""

from __future__ import annotations

import structlog

from core import taskqueue
from models.generations import reset_expired_cycles
from workers.context import current
from workers.policy import task

log = structlog.get_logger(__name__)


@task(taskqueue.RESET_GENERATION_CYCLES, soft_time_limit=120, time_limit=180)
def reset_generation_cycles() -> None:
    """Zero the generation counters of every user whose billing cycle has ended (beat, idempotent)."""
    with current().sessions.begin() as session:
        count = reset_expired_cycles(session)
    log.info("generation_cycles_reset", users=count)
