"""The rate limiter: every window of a class checked and consumed in one atomic Redis round trip.

Why not Flask-Limiter / `limits`: both check a request's limits one after another, each `hit` its
own round trip, so a request refused by its hour window has already used up its minute window —
the very flaw of the original system. `models/ratelimit.lua` checks all windows first and records
the request in none of them unless all admit it, in a single EVALSHA. redis-py's `Script` sends
the script by its SHA; a server that lost it (restart, SCRIPT FLUSH) answers NOSCRIPT once, and the
script is loaded and called again — the only time a check takes more than one round trip.

Algorithm: sliding-window log (see the script). Worst-case error is zero — any window of the class's
length holds at most `limit` admitted requests — at the price of O(limit) memory per subject and
class, which is small at these limits (≤ 100 entries by default). Time comes from the Redis server
(TIME), so API processes with skewed clocks agree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import structlog
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.settings import Settings
from models.errors import RateLimiterUnavailable
from models.ratelimit_classes import Window, depends_on_plan, windows_for

SCRIPT = (Path(__file__).with_name("ratelimit.lua")).read_text()
FAIL_OPEN_WARNING_INTERVAL_SECONDS = 60.0

FAIL_OPEN = Counter(
    "iskra_rate_limit_fail_open_total", "Requests let through because Redis was unreachable", ["class"]
)
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WindowState:
    window: Window
    remaining: int
    reset_ms: int


@dataclass(frozen=True)
class Decision:
    """What the limiter said; `windows` is empty when Redis was down and the limiter failed open."""

    class_name: str
    allowed: bool
    windows: tuple[WindowState, ...]
    refused: WindowState | None = None
    retry_after_ms: int = 0

    @property
    def tightest(self) -> WindowState | None:
        """The window closest to refusing (the refusing one, when refused)."""
        if self.refused is not None:
            return self.refused
        return min(self.windows, key=lambda state: (state.remaining, state.window.seconds), default=None)


class RateLimiter:
    """Sliding-window rate limits in Redis, per class and subject (a user id or a client address)."""

    def __init__(self, redis_client: Any, settings: Settings) -> None:
        self.redis = _without_backoff(redis_client)
        self.settings = settings
        self.script = self.redis.register_script(SCRIPT)
        self._warned_at = float("-inf")
        self._warn_lock = threading.Lock()

    def needs_plan(self, class_name: str) -> bool:
        """Whether this class's numbers differ by plan (so the caller must look the plan up)."""
        return depends_on_plan(class_name, self.settings.rate_limit_overrides)

    def key(self, class_name: str, subject: str) -> str:
        # One hash tag per subject and class keeps the key on one slot of a Redis Cluster.
        return f"{self.settings.redis_key_prefix}ratelimit:{{{class_name}:{subject}}}"

    def hit(self, class_name: str, subject: str, plan: str | None = None, now_us: int = 0) -> Decision:
        """Admit and record one request, or refuse it and record nothing. `now_us=0`: Redis's clock."""
        windows = windows_for(class_name, plan, self.settings.rate_limit_overrides)
        if not windows:
            return Decision(class_name, True, ())
        args: list[int] = [now_us, len(windows)]
        for window in windows:
            args += [window.seconds * 1_000_000, window.limit]
        try:
            reply = self.script(keys=[self.key(class_name, subject)], args=args)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            return self._unavailable(class_name, error)
        return _decision(class_name, windows, [int(value) for value in reply])

    def _unavailable(self, class_name: str, error: Exception) -> Decision:
        if not self.settings.rate_limit_fail_open:
            raise RateLimiterUnavailable("Rate limits cannot be checked right now; try again shortly.")
        FAIL_OPEN.labels(class_name).inc()
        with self._warn_lock:
            now = time.monotonic()
            due = now - self._warned_at >= FAIL_OPEN_WARNING_INTERVAL_SECONDS
            if due:
                self._warned_at = now
        if due:
            log.warning("rate_limiter_failing_open", rate_limit_class=class_name, error=repr(error))
        return Decision(class_name, True, ())


def _without_backoff(client: Any) -> redis.Redis:
    """A client on its own pool, like `client` but retrying once at once instead of backing off.

    redis-py's default retries with exponential backoff would hold every request for seconds
    while Redis is down; a limiter that fails open or closed should answer at once. The one retry
    replaces a pooled connection the server closed; if a call ran but its reply timed out, the
    retry counts that request twice, which errs on the strict side.
    """
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 1)}
    return redis.Redis(
        connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=pool.max_connections, **kwargs
        )
    )


def _decision(class_name: str, windows: tuple[Window, ...], reply: list[int]) -> Decision:
    allowed, refused_index, retry_us = reply[0], reply[1], reply[2]
    states = tuple(
        WindowState(window, reply[3 + 2 * i], _ceil_ms(reply[4 + 2 * i])) for i, window in enumerate(windows)
    )
    return Decision(
        class_name,
        allowed == 1,
        states,
        refused=states[refused_index - 1] if refused_index else None,
        retry_after_ms=_ceil_ms(retry_us),
    )


def _ceil_ms(microseconds: int) -> int:
    return -(-microseconds // 1000)
