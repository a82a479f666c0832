"""JwksCache against a live JWKS endpoint, with a hand-driven clock."""

from __future__ import annotations

import json

import jwt
import pytest

from web.jwks import JwksCache, JwksUnavailable

MAX_AGE, COOLDOWN = 600, 30


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(jwks_server, clock) -> JwksCache:
    return JwksCache(
        jwks_server.url,
        max_age_seconds=MAX_AGE,
        refetch_cooldown_seconds=COOLDOWN,
        timeout_seconds=2,
        clock=clock,
    )


def break_endpoint(server, how: str) -> None:
    if how == "status-500":
        server.failing_status = 500
    elif how == "connection-refused":
        server.stop()
    elif how == "not-a-key-set":
        server.raw_body = b"[]"
    elif how == "keys-not-objects":
        server.raw_body = b'{"keys": ["x", 1]}'
    else:
        server.raw_body = b"<html>gateway timeout</html>"


FAILURES = ["status-500", "connection-refused", "not-a-key-set", "keys-not-objects", "not-json"]


def test_a_fetched_key_verifies_tokens_signed_by_its_private_half(cache, jwks_server):
    token = jwks_server.sign({"sub": "user_1"}, kid="key-1")

    key = cache.key_for("key-1")

    assert jwt.decode(token, key, algorithms=["RS256"])["sub"] == "user_1"


def test_keys_are_cached_so_a_second_lookup_makes_no_request(cache, jwks_server, clock):
    cache.key_for("key-1")
    clock.advance(MAX_AGE - 1)

    assert cache.key_for("key-1") is not None
    assert jwks_server.requests == 1


def test_keys_older_than_max_age_are_fetched_again(cache, jwks_server, clock):
    cache.key_for("key-1")
    clock.advance(MAX_AGE)

    cache.key_for("key-1")

    assert jwks_server.requests == 2


def test_an_unknown_kid_refetches_once_and_not_again_within_the_cooldown(cache, jwks_server, clock):
    cache.key_for("key-1")
    clock.advance(COOLDOWN)

    assert cache.key_for("key-unknown") is None
    assert jwks_server.requests == 2

    clock.advance(COOLDOWN - 1)
    assert cache.key_for("key-other-unknown") is None
    assert jwks_server.requests == 2

    clock.advance(1)
    assert cache.key_for("key-other-unknown") is None
    assert jwks_server.requests == 3


def test_a_rotated_key_is_picked_up_by_the_unknown_kid_refetch(cache, jwks_server, clock):
    cache.key_for("key-1")
    jwks_server.publish("key-2")
    clock.advance(COOLDOWN)
    token = jwks_server.sign({"sub": "user_rotated"}, kid="key-2")

    key = cache.key_for("key-2")

    assert jwt.decode(token, key, algorithms=["RS256"])["sub"] == "user_rotated"
    assert cache.key_for("key-1") is None


def test_keys_marked_for_encryption_are_not_used_for_signatures(cache, jwks_server):
    jwks_server.publish("key-1", "key-enc")
    document = jwks_server.jwks()
    document["keys"][1]["use"] = "enc"
    jwks_server.raw_body = json.dumps(document).encode()

    assert cache.key_for("key-1") is not None
    assert cache.key_for("key-enc") is None


@pytest.mark.parametrize("failure", FAILURES)
def test_the_last_good_keys_keep_working_when_the_endpoint_fails(cache, jwks_server, clock, failure):
    cache.key_for("key-1")
    break_endpoint(jwks_server, failure)
    clock.advance(MAX_AGE * 3)

    assert cache.key_for("key-1") is not None
    assert cache.fetch_count == 2


def test_a_failing_endpoint_is_retried_at_most_once_per_cooldown(cache, jwks_server, clock):
    cache.key_for("key-1")
    jwks_server.failing_status = 500
    clock.advance(MAX_AGE)

    for _ in range(5):
        cache.key_for("key-1")
        cache.key_for("key-unknown")
        clock.advance(1)

    assert jwks_server.requests == 2


@pytest.mark.parametrize("failure", FAILURES)
def test_with_no_good_keys_ever_a_lookup_raises_jwks_unavailable(cache, jwks_server, failure):
    break_endpoint(jwks_server, failure)

    with pytest.raises(JwksUnavailable):
        cache.key_for("key-1")


def test_an_endpoint_that_recovers_is_used_after_the_cooldown(cache, jwks_server, clock):
    jwks_server.failing_status = 500
    with pytest.raises(JwksUnavailable):
        cache.key_for("key-1")
    jwks_server.failing_status = None

    with pytest.raises(JwksUnavailable):
        cache.key_for("key-1")
    clock.advance(COOLDOWN)

    assert cache.key_for("key-1") is not None
    assert jwks_server.requests == 2
