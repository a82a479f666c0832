"""Idempotency keys in Redis: claim, settle, replay, and what a lock that outlived its request allows."""

from __future__ import annotations

import socket
import uuid

import pytest
import redis

from models.errors import IdempotencyKeyInUse, IdempotencyKeyReused, IdempotencyUnavailable
from models.idempotency import Claim, IdempotencyKeys, KeptResponse


@pytest.fixture
def keys(redis_client, settings):
    prefix = f"{settings.redis_key_prefix}idem-{uuid.uuid4().hex[:8]}:"
    yield IdempotencyKeys(redis_client, prefix)
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)


def answer(fingerprint: str, status: int = 201) -> KeptResponse:
    return KeptResponse(fingerprint, status, {"Location": "/v1/things/1"}, '{"id": 1}')


def test_a_settled_claim_is_replayed_to_the_same_request(keys):
    claim = keys.claim("user_a", "k", "fp")
    assert isinstance(claim, Claim)
    keys.settle(claim, answer("fp"))

    assert keys.claim("user_a", "k", "fp") == answer("fp")


def test_a_running_claim_refuses_the_same_request_and_another_one_differently(keys):
    keys.claim("user_a", "k", "fp")

    with pytest.raises(IdempotencyKeyInUse):
        keys.claim("user_a", "k", "fp")
    with pytest.raises(IdempotencyKeyReused):
        keys.claim("user_a", "k", "other")


def test_a_claim_settled_with_nothing_frees_the_key_for_a_retry(keys):
    keys.settle(keys.claim("user_a", "k", "fp"), None)

    assert isinstance(keys.claim("user_a", "k", "fp"), Claim)


def test_users_and_keys_are_separate(keys):
    keys.settle(keys.claim("user_a", "k", "fp"), answer("fp"))

    assert isinstance(keys.claim("user_b", "k", "fp"), Claim)
    assert isinstance(keys.claim("user_a", "k2", "fp"), Claim)


def test_a_slow_request_whose_lock_expired_still_keeps_its_answer(keys, redis_client):
    claim = keys.claim("user_a", "k", "fp")
    redis_client.delete(claim.lock_key)  # as if LOCK_TTL_SECONDS had passed

    keys.settle(claim, answer("fp"))

    assert keys.claim("user_a", "k", "fp") == answer("fp")


def test_a_request_that_lost_its_lock_to_a_retry_does_not_overwrite_the_retrys_claim(keys, redis_client):
    slow = keys.claim("user_a", "k", "fp")
    redis_client.delete(slow.lock_key)
    retry = keys.claim("user_a", "k", "fp")

    keys.settle(slow, answer("fp", status=200))
    keys.settle(retry, answer("fp", status=201))

    assert keys.claim("user_a", "k", "fp").status == 201


def test_an_unreachable_redis_is_a_503_not_a_silent_second_run() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = redis.Redis(port=port, socket_connect_timeout=0.5)

    with pytest.raises(IdempotencyUnavailable):
        IdempotencyKeys(unreachable, "").claim("user_a", "k", "fp")
