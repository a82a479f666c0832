"""The Redis rate limiter: exact sliding windows, all-or-nothing consumption, expiry, outages."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from types import SimpleNamespace

import pytest
import redis

from models import ratelimit
from models.errors import RateLimiterUnavailable
from models.ratelimit import FAIL_OPEN, RateLimiter
from models.ratelimit_classes import Window, depends_on_plan, windows_for
from tests.redis_server import free_port

T0 = 1_900_000_000_000_000  # a fixed moment in microseconds, so windows slide under the test's control
SECOND = 1_000_000


@pytest.fixture
def limiter(settings, redis_client):
    return RateLimiter(redis_client, settings)


@pytest.fixture
def subject():
    return f"user:{uuid.uuid4().hex}"


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, event: str, **_: object) -> None:
        self.warnings.append(event)


def recording_commands(limiter: RateLimiter, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every command the limiter sends from now on."""
    sent: list[str] = []
    original = limiter.redis.execute_command

    def recording(*args, **options):
        sent.append(str(args[0]))
        return original(*args, **options)

    monkeypatch.setattr(limiter.redis, "execute_command", recording)
    return sent


def test_a_class_admits_its_limit_then_refuses_naming_the_window(limiter, subject):
    decisions = [limiter.hit("video", subject, now_us=T0 + i) for i in range(3)]

    assert [d.allowed for d in decisions] == [True, True, False]
    refused = decisions[2].refused
    assert refused is not None
    assert (refused.window.name, refused.window.limit, refused.remaining) == ("perMinute", 2, 0)
    assert [(s.window.name, s.remaining) for s in decisions[1].windows] == [
        ("perMinute", 0),
        ("perHour", 2),
        ("perDay", 6),
    ]


def test_a_request_refused_by_one_window_consumes_nothing_in_the_others(limiter, subject, redis_client):
    for start in (T0, T0 + 61 * SECOND):
        assert all(limiter.hit("video", subject, now_us=start + i).allowed for i in range(2))
    key = limiter.key("video", subject)
    before = redis_client.zcard(key)

    refusals = [limiter.hit("video", subject, now_us=T0 + 200 * SECOND + i) for i in range(5)]

    assert {d.refused.window.name for d in refusals} == {"perHour"}
    assert redis_client.zcard(key) == before == 4
    minute = next(s for s in refusals[-1].windows if s.window.name == "perMinute")
    assert minute.remaining == 2


def test_windows_slide_exactly_to_the_microsecond(limiter, subject):
    limiter.hit("video", subject, now_us=T0)
    limiter.hit("video", subject, now_us=T0 + SECOND)

    assert not limiter.hit("video", subject, now_us=T0 + 60 * SECOND - 1).allowed
    assert limiter.hit("video", subject, now_us=T0 + 60 * SECOND).allowed
    assert not limiter.hit("video", subject, now_us=T0 + 60 * SECOND + 2).allowed


def test_retry_after_is_when_the_oldest_counted_request_leaves_the_window(limiter, subject):
    limiter.hit("video", subject, now_us=T0)
    limiter.hit("video", subject, now_us=T0 + 10 * SECOND)

    refused = limiter.hit("video", subject, now_us=T0 + 15 * SECOND)

    assert refused.retry_after_ms == 45_000


def test_when_several_windows_refuse_the_longest_wait_is_reported(limiter, subject):
    for minute in range(4):
        limiter.hit("video", subject, now_us=T0 + minute * 61 * SECOND)
    limiter.hit("video", subject, now_us=T0 + 4 * 61 * SECOND)

    refused = limiter.hit("video", subject, now_us=T0 + 4 * 61 * SECOND + 1)

    assert refused.refused.window.name == "perHour"
    assert refused.retry_after_ms == 3_600_000 - (4 * 61 * SECOND + 1) // 1000


def test_every_key_expires_after_the_longest_window_and_carries_the_prefix(limiter, settings, redis_client):
    subjects = [f"user:{uuid.uuid4().hex}" for _ in range(3)]
    for class_name, subject in zip(("upload", "standard", "ip"), subjects, strict=True):
        limiter.hit(class_name, subject)

    keys = [limiter.key(c, s) for c, s in zip(("upload", "standard", "ip"), subjects, strict=True)]
    assert all(key.startswith(settings.redis_key_prefix) for key in keys)
    ttls = [redis_client.pttl(key) for key in keys]
    assert 3_590_000 < ttls[0] <= 3_600_000
    assert all(86_390_000 < ttl <= 86_400_000 for ttl in ttls[1:])


def test_concurrent_requests_are_admitted_exactly_up_to_the_limit(settings, redis_client, subject):
    raised = settings.model_copy(update={"rate_limit_overrides": {"default": {"upload": {"perMinute": 37}}}})
    limiter = RateLimiter(redis_client, raised)
    barrier = Barrier(8)

    def hammer(_: int) -> int:
        barrier.wait()
        return sum(limiter.hit("upload", subject).allowed for _ in range(25))

    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = sum(pool.map(hammer, range(8)))

    assert allowed == 37


def test_each_check_is_one_evalsha_round_trip(limiter, subject, monkeypatch):
    limiter.hit("standard", subject)
    sent = recording_commands(limiter, monkeypatch)

    for _ in range(3):
        limiter.hit("standard", subject)

    assert sent == ["EVALSHA"] * 3


def test_a_server_that_lost_its_scripts_gets_the_script_again_once(settings, private_redis, monkeypatch):
    limiter = RateLimiter(private_redis.client, settings)
    subject = f"user:{uuid.uuid4().hex}"
    assert limiter.hit("video", subject, now_us=T0).allowed
    private_redis.client.script_flush()
    sent = recording_commands(limiter, monkeypatch)

    decisions = [limiter.hit("video", subject, now_us=T0 + i) for i in (1, 2)]

    assert sent == ["EVALSHA", "SCRIPT LOAD", "EVALSHA", "EVALSHA"]
    assert [d.allowed for d in decisions] == [True, False]


def test_overrides_apply_to_all_plans_then_per_plan_and_null_removes_a_window():
    overrides = {
        "default": {"standard": {"perMinute": 7}},
        "pro": {"standard": {"perHour": 150, "perDay": None}},
    }

    assert windows_for("standard", "free", overrides) == (
        Window("perMinute", 60, 7),
        Window("perHour", 3600, 15),
        Window("perDay", 86400, 50),
    )
    assert windows_for("standard", "pro", overrides) == (
        Window("perMinute", 60, 7),
        Window("perHour", 3600, 150),
    )
    assert depends_on_plan("standard", overrides)
    assert not depends_on_plan("upload", overrides)


def test_overrides_are_read_from_the_environment_as_json(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", '{"pro": {"video": {"perMinute": 4, "perDay": null}}}')

    assert Settings(_env_file=None).rate_limit_overrides == {
        "pro": {"video": {"perMinute": 4, "perDay": None}}
    }


def test_overrides_for_the_legacy_paid_tier_apply_to_pro_whose_own_numbers_win(monkeypatch):
    from core.settings import Settings

    monkeypatch.setenv(
        "RATE_LIMIT_OVERRIDES",
        '{"pro": {"video": {"perMinute": 4}}, "paid": {"video": {"perMinute": 3, "perHour": 9}}}',
    )

    overrides = Settings(_env_file=None).rate_limit_overrides

    assert overrides == {"pro": {"video": {"perMinute": 4, "perHour": 9}}}
    assert windows_for("video", "pro", overrides) == (
        Window("perMinute", 60, 4),
        Window("perHour", 3600, 9),
        Window("perDay", 86400, 8),
    )


@pytest.mark.parametrize("plan", ["platinum", "Pro", ""])
def test_overrides_for_a_plan_no_user_can_be_on_are_refused_at_startup(monkeypatch, plan):
    from pydantic import ValidationError

    from core.settings import Settings

    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", f'{{"{plan}": {{"upload": {{"perMinute": 40}}}}}}')

    with pytest.raises(ValidationError, match="unknown plan"):
        Settings(_env_file=None)


def test_an_unknown_window_in_the_overrides_is_refused_at_startup(monkeypatch):
    from pydantic import ValidationError

    from core.settings import Settings

    monkeypatch.setenv("RATE_LIMIT_OVERRIDES", '{"pro": {"video": {"perWeek": 4}}}')

    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_a_closed_port_fails_open_counting_each_request_and_warning_once(settings, monkeypatch, subject):
    recorder = Recorder()
    monkeypatch.setattr(ratelimit, "log", recorder)
    down = redis.Redis(port=free_port(), socket_connect_timeout=1)
    limiter = RateLimiter(down, settings.model_copy(update={"rate_limit_fail_open": True}))
    before = FAIL_OPEN.labels("upload")._value.get()

    decisions = [limiter.hit("upload", subject) for _ in range(3)]

    assert all(d.allowed and d.windows == () for d in decisions)
    assert FAIL_OPEN.labels("upload")._value.get() == before + 3
    assert recorder.warnings == ["rate_limiter_failing_open"]


def test_the_fail_open_warning_comes_again_once_per_interval(settings, monkeypatch, subject):
    recorder, clock = Recorder(), SimpleNamespace(now=1000.0)
    monkeypatch.setattr(ratelimit, "log", recorder)
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=lambda: clock.now))
    down = redis.Redis(port=free_port(), socket_connect_timeout=1)
    limiter = RateLimiter(down, settings.model_copy(update={"rate_limit_fail_open": True}))

    warned = []
    for seconds in (0, 30, 59, 60, 61, 125):
        clock.now = 1000.0 + seconds
        limiter.hit("upload", subject)
        warned.append(len(recorder.warnings))

    assert warned == [1, 1, 1, 2, 2, 3]


def test_a_closed_port_fails_closed_when_configured(settings, subject):
    down = redis.Redis(port=free_port(), socket_connect_timeout=1)
    limiter = RateLimiter(down, settings.model_copy(update={"rate_limit_fail_open": False}))

    with pytest.raises(RateLimiterUnavailable):
        limiter.hit("upload", subject)


def test_a_redis_stopped_mid_test_fails_open_then_limits_again_once_it_is_back(settings, private_redis):
    limiter = RateLimiter(private_redis.client, settings.model_copy(update={"rate_limit_fail_open": True}))
    subject = f"user:{uuid.uuid4().hex}"
    assert limiter.hit("video", subject).windows != ()

    private_redis.stop()
    while_down = [limiter.hit("video", subject) for _ in range(3)]
    private_redis.start()
    once_back = [limiter.hit("video", subject) for _ in range(3)]

    assert all(d.allowed and d.windows == () for d in while_down)
    # The restarted server kept no data (--save ""), so the budget starts full again.
    assert [d.allowed for d in once_back] == [True, True, False]
