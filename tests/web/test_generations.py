"""POST /v1/me/generations/reserve and /refund, and what GET /v1/me/usage shows of them."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlalchemy import text, update

from models.cycles import cycle_containing
from models.ratelimit import RateLimiter
from models.tables import GenerationReservation, User
from tests.web.uploading import assert_problem

RESERVE, REFUND = "/v1/me/generations/reserve", "/v1/me/generations/refund"


def test_a_reservation_reports_its_id_expiry_the_quota_and_the_rate_limit_budget(client, auth_header):
    answer = client.post(RESERVE, json={"type": "image", "count": 3}, headers=auth_header())

    assert answer.status_code == 200
    assert answer.json | {"resetsAt": 0, "reservationId": "", "expiresAt": 0} == {
        "type": "image",
        "used": 3,
        "limit": 12,
        "remaining": 9,
        "percentage": 25.0,
        "resetsAt": 0,
        "reservationId": "",
        "expiresAt": 0,
    }
    assert uuid.UUID(answer.json["reservationId"])
    assert abs(answer.json["expiresAt"] / 1000 - (time.time() + 3600)) < 60
    assert answer.headers["X-RateLimit-Remaining"] == "4"
    assert answer.headers["RateLimit-Policy"] == "5;w=60, 15;w=3600, 50;w=86400"


def test_usage_shows_reservations_and_refunds(client, auth_header):
    headers = auth_header()
    reserved = client.post(RESERVE, json={"type": "video", "count": 2}, headers=headers).json
    client.post(REFUND, json={"reservationId": reserved["reservationId"], "count": 1}, headers=headers)

    usage = client.get("/v1/me/usage", headers=headers).json["generations"]["video"]

    assert usage == {"used": 1, "limit": 3, "remaining": 2, "percentage": 33.33}


def test_a_reservation_over_the_monthly_quota_is_429_and_takes_nothing(client, auth_header, session):
    headers = auth_header("user_quota")
    client.post(RESERVE, json={"type": "image", "count": 10}, headers=headers)

    refused = client.post(RESERVE, json={"type": "image", "count": 3}, headers=headers)

    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.json["type"] == "generation-quota-exceeded"
    assert (refused.json["used"], refused.json["limit"], refused.json["remaining"]) == (10, 12, 2)
    assert session.get(User, "user_quota").images_used_in_period == 10
    until_reset = refused.json["resetsAt"] / 1000 - time.time()
    assert abs(int(refused.headers["Retry-After"]) - until_reset) < 5


def test_refunding_one_reservation_twice_is_refused_and_gives_back_only_what_it_held(client, auth_header):
    headers = auth_header()
    client.post(RESERVE, json={"type": "video", "count": 1}, headers=headers)
    reserved = client.post(RESERVE, json={"type": "video", "count": 2}, headers=headers).json
    body = {"reservationId": reserved["reservationId"], "count": 3}

    first = client.post(REFUND, json=body, headers=headers)
    second = client.post(REFUND, json=body, headers=headers)

    assert first.status_code == 200
    assert first.json | {"resetsAt": 0} == {
        "type": "video",
        "used": 1,
        "limit": 3,
        "remaining": 2,
        "percentage": 33.33,
        "resetsAt": 0,
        "reservationId": reserved["reservationId"],
        "refunded": 2,
    }
    assert_problem(second, 409, "reservation-closed")
    assert second.json["reservationStatus"] == "refunded"
    # The unit the other reservation holds was never given back.
    assert client.get("/v1/me/usage", headers=headers).json["generations"]["video"]["used"] == 1


def test_a_refund_without_a_count_gives_back_all_that_is_left(client, auth_header):
    headers = auth_header()
    reserved = client.post(RESERVE, json={"type": "image", "count": 4}, headers=headers).json
    body = {"reservationId": reserved["reservationId"]}

    one = client.post(REFUND, json=body | {"count": 1, "type": "image"}, headers=headers).json
    rest = client.post(REFUND, json=body, headers=headers).json

    assert [(one["refunded"], one["used"]), (rest["refunded"], rest["used"])] == [(1, 3), (3, 0)]


def test_refunding_someone_elses_or_an_unknown_reservation_is_404(client, auth_header):
    owner = auth_header()
    reserved = client.post(RESERVE, json={"type": "image", "count": 2}, headers=owner).json

    stolen = client.post(REFUND, json={"reservationId": reserved["reservationId"]}, headers=auth_header())
    unknown = client.post(REFUND, json={"reservationId": str(uuid.uuid4())}, headers=owner)
    malformed = client.post(REFUND, json={"reservationId": "123"}, headers=owner)

    for answer in (stolen, unknown, malformed):
        assert_problem(answer, 404, "not-found")
    assert client.get("/v1/me/usage", headers=owner).json["generations"]["image"]["used"] == 2


def test_an_expired_reservation_is_closed_to_refunds(client, auth_header, session):
    headers = auth_header()
    reserved = client.post(RESERVE, json={"type": "image", "count": 2}, headers=headers).json
    session.execute(
        update(GenerationReservation)
        .where(GenerationReservation.id == uuid.UUID(reserved["reservationId"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    session.commit()

    answer = client.post(REFUND, json={"reservationId": reserved["reservationId"]}, headers=headers)

    assert_problem(answer, 409, "reservation-closed")
    assert answer.json["reservationStatus"] == "expired"
    assert client.get("/v1/me/usage", headers=headers).json["generations"]["image"]["used"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"type": "image", "count": 1},
        {"reservationId": "{id}", "type": "video"},
        {"reservationId": "{id}", "count": 0},
        {"reservationId": "{id}", "count": "1"},
        {"reservationId": "{id}", "extra": 1},
    ],
    ids=["no-reservation-id", "other-type", "zero-count", "string-count", "unknown-key"],
)
def test_a_malformed_refund_is_422_and_gives_nothing_back(client, auth_header, body):
    headers = auth_header()
    reserved = client.post(RESERVE, json={"type": "image", "count": 2}, headers=headers).json
    filled = {
        key: value.format(id=reserved["reservationId"]) if isinstance(value, str) else value
        for key, value in body.items()
    }

    answer = client.post(REFUND, json=filled, headers=headers)

    assert_problem(answer, 422, "validation-failed")
    assert client.get("/v1/me/usage", headers=headers).json["generations"]["image"]["used"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"type": "image", "count": 0},
        {"type": "image", "count": 11},
        {"type": "audio"},
        {"type": "image", "n": 1},
    ],
)
def test_a_malformed_request_is_refused_with_422(client, auth_header, body):
    answer = client.post(RESERVE, json=body, headers=auth_header())

    assert (answer.status_code, answer.json["type"]) == (422, "validation-failed")


def test_image_reservations_are_limited_by_the_standard_class(client, auth_header):
    headers = auth_header()
    answers = [client.post(RESERVE, json={"type": "image"}, headers=headers) for _ in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert (answers[5].json["type"], answers[5].json["class"]) == ("rate-limited", "standard")
    assert answers[5].headers["X-RateLimit-Period"] == "perMinute"
    # The request the limiter refused took nothing from the monthly quota.
    assert client.get("/v1/me/usage", headers=headers).json["generations"]["image"]["used"] == 5


def test_video_reservations_are_limited_by_the_video_class(client, auth_header):
    headers = auth_header()
    answers = [client.post(RESERVE, json={"type": "video"}, headers=headers) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json["class"] == "video"
    assert answers[2].headers["X-RateLimit-Limit"] == "2"


def test_a_lapsed_cycle_reads_as_reset_and_the_next_reservation_starts_a_new_cycle(
    client, auth_header, session
):
    headers = auth_header("user_lapsed_web")
    client.get("/v1/me", headers=headers)
    signup = datetime.now(UTC) - timedelta(days=75)
    session.execute(
        update(User)
        .where(User.user_id == "user_lapsed_web")
        .values(
            created_at=signup,
            billing_cycle_start=signup,
            billing_cycle_end=signup + timedelta(days=30),
            images_used_in_period=12,
        )
    )
    session.commit()

    usage = client.get("/v1/me/usage", headers=headers).json
    reserved = client.post(RESERVE, json={"type": "image", "count": 2}, headers=headers)

    assert usage["generations"]["image"]["used"] == 0
    assert usage["billingCycleEnd"] > datetime.now(UTC).timestamp() * 1000
    assert (reserved.status_code, reserved.json["used"]) == (200, 2)
    session.expire_all()
    user = session.get(User, "user_lapsed_web")
    assert (user.billing_cycle_start, user.billing_cycle_end) == cycle_containing(signup, datetime.now(UTC))
    assert user.billing_cycle_start <= datetime.now(UTC) < user.billing_cycle_end
    assert usage["billingCycleEnd"] == int(user.billing_cycle_end.timestamp() * 1000)


def test_fifty_concurrent_reservations_grant_exactly_the_quota(committed_app, settings, auth_header, engine):
    # The per-minute limit would refuse most first; raised here so the quota alone is what is proven.
    unlimited = {"perMinute": 1000, "perHour": 1000, "perDay": 1000}
    raised = settings.model_copy(update={"rate_limit_overrides": {"default": {"standard": unlimited}}})
    services = committed_app.extensions["iskra"]
    services.limiter = RateLimiter(services.redis, raised)
    headers = auth_header("user_fifty")
    committed_app.test_client().get("/v1/me", headers=headers)
    barrier = Barrier(50)

    def reserve_one(_: int) -> int:
        with committed_app.test_client() as client:
            barrier.wait()
            answer = client.post(RESERVE, json={"type": "image", "count": 1}, headers=headers)
            return answer.status_code if answer.status_code == 200 else answer.json["type"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(reserve_one, range(50)))

    assert outcomes.count(200) == 12
    assert outcomes.count("generation-quota-exceeded") == 38
    with engine.connect() as connection:
        used = connection.scalar(text("SELECT images_used_in_period FROM users WHERE user_id = 'user_fifty'"))
    assert used == 12
