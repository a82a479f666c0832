"""GET /v1/me and /v1/me/usage."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

from sqlalchemy import func, select, text, update

from models.tables import Project, User


def test_first_request_creates_a_free_user_with_project_01(client, auth_header, session):
    response = client.get("/v1/me", headers=auth_header("user_first", "first@example.com"))

    assert response.status_code == 200
    body = response.json
    assert body["userId"] == "user_first"
    assert body["email"] == "first@example.com"
    assert body["tier"] == "free"
    assert body["storageQuotaBytes"] == 524_288_000
    assert body["storageUsedBytes"] == 0
    names = session.scalars(select(Project.name).where(Project.user_id == "user_first")).all()
    assert names == ["Project 01"]


def test_second_request_returns_the_same_user_without_a_second_project(client, auth_header, session):
    headers = auth_header("user_twice")
    first = client.get("/v1/me", headers=headers).json
    second = client.get("/v1/me", headers=headers).json

    assert first["createdAt"] == second["createdAt"]
    count = session.scalar(select(func.count()).select_from(Project).where(Project.user_id == "user_twice"))
    assert count == 1


def test_ten_simultaneous_first_requests_create_one_user_and_one_project(committed_app, auth_header, engine):
    headers = auth_header("user_racing")
    barrier = Barrier(10)

    def call_me() -> int:
        with committed_app.test_client() as client:
            barrier.wait()
            return client.get("/v1/me", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: call_me(), range(10)))

    assert statuses == [200] * 10
    with engine.connect() as connection:
        users = connection.scalar(text("SELECT count(*) FROM users WHERE user_id = 'user_racing'"))
        projects = connection.scalar(text("SELECT count(*) FROM projects WHERE user_id = 'user_racing'"))
    assert (users, projects) == (1, 1)


def test_usage_reports_status_by_percentage_of_quota(client, auth_header, session):
    headers = auth_header("user_usage")
    client.get("/v1/me", headers=headers)
    quota = 524_288_000
    expectations = [
        (0, "ok", 0.0),
        (int(quota * 0.8) - 1, "ok", 80.0),
        (int(quota * 0.8), "warning", 80.0),
        (quota - 1, "warning", 100.0),
        (quota, "exceeded", 100.0),
    ]
    for used, status, percentage in expectations:
        session.get(User, "user_usage").storage_used_bytes = used
        session.commit()

        storage = client.get("/v1/me/usage", headers=headers).json["storage"]

        assert (storage["usedBytes"], storage["status"], storage["percentage"]) == (used, status, percentage)


def test_usage_reports_generation_limits_of_the_plan(client, auth_header):
    body = client.get("/v1/me/usage", headers=auth_header()).json

    assert body["generations"]["image"] == {"used": 0, "limit": 12, "remaining": 12, "percentage": 0.0}
    assert body["generations"]["video"]["limit"] == 3
    assert 28 <= body["daysUntilReset"] <= 31


def test_usage_reports_the_cycle_dates_and_whole_days_until_the_reset(client, auth_header, session):
    headers = auth_header("user_cycle_dates")
    client.get("/v1/me", headers=headers)
    start = datetime.now(UTC) - timedelta(days=20)
    end = datetime.now(UTC) + timedelta(days=4, hours=2)
    session.execute(
        update(User)
        .where(User.user_id == "user_cycle_dates")
        .values(billing_cycle_start=start, billing_cycle_end=end)
    )
    session.commit()

    body = client.get("/v1/me/usage", headers=headers).json

    assert (body["billingCycleStart"], body["billingCycleEnd"]) == (
        int(start.timestamp() * 1000),
        int(end.timestamp() * 1000),
    )
    assert body["daysUntilReset"] == 5
