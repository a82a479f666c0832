"""The `iskra` operators' CLI against a real database, Redis, storage and worker."""

from __future__ import annotations

import io
import re
import uuid

import jwt
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, make_url, select, text
from sqlalchemy.orm import sessionmaker

from admin.cli import load_settings, main
from core import taskqueue
from models.maintenance import RECONCILE_LOCK
from models.storage import make_storage
from models.storage.keys import original_key
from models.tables import Asset, User
from models.users import ensure_user
from tests.processes import running, settings_env, worker_command
from tests.queues import take


def me(app, token: str):
    return app.test_client().get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_dev_token_with_console_prints_a_link_that_signs_the_console_in(app, settings):
    result = CliRunner().invoke(
        main, ["dev-token", "user_from_cli", "--console", "--api-url", "http://127.0.0.1:9000/"],
        env=settings_env(settings),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    link, _, token = result.stdout.strip().partition("#token=")
    assert link == "http://127.0.0.1:9000/console/"
    assert me(app, token).json["userId"] == "user_from_cli"


def test_dev_token_links_to_the_console_on_the_configured_port_by_default(settings):
    env = {**settings_env(settings), "PORT": "8123"}

    result = CliRunner().invoke(main, ["dev-token", "user_from_cli", "--console"], env=env)

    assert result.stdout.startswith("http://localhost:8123/console/#token=ey")


def test_dev_token_prints_a_token_the_api_accepts_for_that_user(app, settings):
    result = CliRunner().invoke(
        main, ["dev-token", "user_from_cli", "--email", "cli@example.com"], env=settings_env(settings)
    )

    assert result.exit_code == 0, result.output
    response = me(app, result.stdout.strip())
    assert response.status_code == 200
    assert (response.json["userId"], response.json["email"]) == ("user_from_cli", "cli@example.com")


def test_dev_token_uses_the_local_stacks_generated_secret_when_the_environment_has_none(
    app, settings, tmp_path
):
    (tmp_path / "local.env").write_text(f"DEV_JWT_SECRET={settings.dev_jwt_secret.get_secret_value()}\n")
    env = {**settings_env(settings), "ISKRA_DATA_DIR": str(tmp_path), "DEV_JWT_SECRET": None}

    result = CliRunner().invoke(main, ["dev-token", "user_local_stack"], env=env)

    assert result.exit_code == 0, result.output
    assert me(app, result.stdout.strip()).json["userId"] == "user_local_stack"


def test_the_environment_wins_over_the_local_stacks_file(app, settings, tmp_path):
    (tmp_path / "local.env").write_text(f"DEV_JWT_SECRET={settings.dev_jwt_secret.get_secret_value()}\n")
    env = {**settings_env(settings), "ISKRA_DATA_DIR": str(tmp_path), "DEV_JWT_SECRET": "x" * 40}

    result = CliRunner().invoke(main, ["dev-token", "user_env_wins"], env=env)

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert jwt.decode(token, "x" * 40, algorithms=["HS256"], audience="convex")["sub"] == "user_env_wins"
    assert me(app, token).status_code == 401


def test_dev_token_refuses_when_no_secret_is_configured(settings, tmp_path):
    env = {**settings_env(settings), "ISKRA_DATA_DIR": str(tmp_path), "DEV_JWT_SECRET": None}

    result = CliRunner().invoke(main, ["dev-token", "user_x"], env=env)

    assert result.exit_code == 1
    assert "DEV_JWT_SECRET" in result.output and "Traceback" not in result.output
    assert result.stdout == ""


def test_dev_token_refuses_in_clerk_mode(settings):
    env = {**settings_env(settings), "AUTH_MODE": "clerk", "CLERK_JWT_ISSUER_DOMAIN": "https://clerk.example"}

    result = CliRunner().invoke(main, ["dev-token", "user_x"], env=env)

    assert result.exit_code == 1
    assert "AUTH_MODE=dev" in result.output
    assert result.stdout == ""


def test_invalid_settings_are_reported_without_a_traceback(settings):
    env = {**settings_env(settings), "ENVIRONMENT": "production", "AUTH_MODE": "dev"}

    result = CliRunner().invoke(main, ["dev-token", "user_x"], env=env)

    assert result.exit_code == 1
    assert "AUTH_MODE=dev is refused when ENVIRONMENT=production" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def committed(engine, settings, tmp_path):
    """Sessions that really commit (the CLI has its own connection), storage of this test's own, cleanup."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    test_settings = settings.model_copy(update={"storage_local_root": tmp_path / "media"})
    users: list[str] = []
    yield sessions, test_settings, users
    with engine.begin() as connection:
        connection.execute(delete(Asset).where(Asset.user_id.in_(users)))
        connection.execute(delete(User).where(User.user_id.in_(users)))


def _user(sessions, users: list[str], **columns) -> str:
    user_id = f"user_cli_{uuid.uuid4().hex[:8]}"
    users.append(user_id)
    with sessions.begin() as session:
        user = ensure_user(session, user_id, "ops@example.com")
        for name, value in columns.items():
            setattr(user, name, value)
    return user_id


def _asset(sessions, user_id: str, **columns) -> str:
    asset_id = uuid.uuid4()
    values = {"type": "image", "mime_type": "image/png", "size_bytes": 100, "status": "ready", **columns}
    with sessions.begin() as session:
        session.add(Asset(id=asset_id, user_id=user_id, storage_key=f"originals/x/{asset_id}.png", **values))
    return str(asset_id)


def iskra(settings, *args: str):
    return CliRunner().invoke(main, list(args), env=settings_env(settings))


def test_usage_shows_tier_storage_and_generations_against_the_plan(committed):
    sessions, settings, users = committed
    user_id = _user(sessions, users, storage_used_bytes=200, images_used_in_period=5)
    _asset(sessions, user_id, size_bytes=200)

    result = iskra(settings, "usage", user_id)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"user      {user_id} (ops@example.com)"
    assert lines[1] == "tier      free"
    assert lines[2] == "storage   200 of 524,288,000 bytes (0.0%, ok)"
    assert lines[3] == "images    5 of 12 (7 left)"


def test_usage_of_an_unknown_user_fails_with_a_message(committed):
    _sessions, settings, _users = committed

    result = iskra(settings, "usage", "user_nobody_at_all")

    assert result.exit_code == 1
    assert "no user 'user_nobody_at_all'" in result.output


def test_failed_assets_are_listed_with_their_error_and_attempts(committed):
    sessions, settings, users = committed
    user_id = _user(sessions, users)
    failed = _asset(sessions, user_id, status="failed", error="unsupported-format", attempts=2)
    _asset(sessions, user_id, status="ready")

    result = iskra(settings, "assets", "failed", "--user", user_id)

    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert len(rows) == 1
    assert rows[0].split()[:5] == [failed, user_id, "image", "unsupported-format", "2"]


def test_requeue_resets_failed_assets_and_sends_each_to_the_task_that_resumes_it(committed, redis_client):
    sessions, settings, users = committed
    user_id = _user(sessions, users)
    image = _asset(sessions, user_id, status="failed", error="too-many-attempts", attempts=5)
    video = _asset(sessions, user_id, type="video", status="failed", error="probe-failed", attempts=1)
    # An import whose download failed has no bytes yet: it needs the download again, not renditions.
    imported = _asset(
        sessions, user_id, status="failed", size_bytes=0, original_url="https://cdn.example/a.png"
    )

    result = iskra(settings, "assets", "requeue", image, video, imported)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["re-queued 3 asset(s)"]
    assert "re-queue: 100%" in result.stderr and "3/3" in result.stderr  # the progress bar
    with sessions() as session:
        rows = session.execute(
            select(Asset.status, Asset.error, Asset.attempts).where(Asset.user_id == user_id)
        )
        assert {tuple(row) for row in rows} == {("pending", None, 0)}
    assert len(take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, image)) == 1
    assert len(take(redis_client, settings, "videos", taskqueue.MAKE_VIDEO_RENDITIONS, video)) == 1
    assert len(take(redis_client, settings, "images", taskqueue.IMPORT_REMOTE_ASSET, imported)) == 1


def test_requeue_leaves_assets_that_are_not_failed_alone(committed, redis_client):
    sessions, settings, users = committed
    ready = _asset(sessions, _user(sessions, users), status="ready")

    result = iskra(settings, "assets", "requeue", ready)

    assert result.exit_code == 0, result.output
    assert "re-queued 0 asset(s)" in result.output
    assert take(redis_client, settings, "images", taskqueue.MAKE_IMAGE_RENDITIONS, ready) == []


@pytest.mark.parametrize("args", [[], ["--all-failed", str(uuid.uuid4())], ["not-an-asset-id"]])
def test_requeue_refuses_ambiguous_or_malformed_arguments(committed, args):
    _sessions, settings, _users = committed

    result = iskra(settings, "assets", "requeue", *args)

    assert result.exit_code == 2


def test_reconcile_fixes_drifted_usage_and_shows_the_drift(committed):
    sessions, settings, users = committed
    drifted = _user(sessions, users, storage_used_bytes=10)
    _asset(sessions, drifted, size_bytes=300)
    _asset(sessions, drifted, size_bytes=200)

    result = iskra(settings, "reconcile")

    assert result.exit_code == 0, result.output
    assert f"{drifted}: 10 -> 500 bytes" in result.output.splitlines()
    with sessions() as session:
        assert session.get(User, drifted).storage_used_bytes == 500
    assert "fixed 0 user(s)" in iskra(settings, "reconcile").output


def test_reconcile_refuses_while_another_reconciliation_runs(committed, engine):
    _sessions, settings, _users = committed
    with engine.connect() as other:
        other.begin()
        assert other.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RECONCILE_LOCK})

        result = iskra(settings, "reconcile")

    assert result.exit_code == 1
    assert "another reconciliation is running" in result.output


def test_sweep_dry_run_lists_abandoned_objects_and_the_real_run_deletes_them(committed):
    sessions, settings, users = committed
    storage = make_storage(settings)
    owner = _user(sessions, users)
    kept_id = _asset(sessions, owner)
    with sessions() as session:
        kept = session.scalar(select(Asset.storage_key).where(Asset.id == uuid.UUID(kept_id)))
    orphan = original_key(owner, uuid.uuid4(), "jpg")
    for key in (kept, orphan):
        storage.put(key, io.BytesIO(b"bytes"), content_type="image/jpeg")

    dry = iskra(settings, "sweep", "--grace-minutes", "0", "--dry-run")
    real = iskra(settings, "sweep", "--grace-minutes", "0")

    assert dry.exit_code == 0 and real.exit_code == 0, dry.output + real.output
    assert dry.stdout.splitlines() == [orphan, "would delete 1 object(s)"]
    assert "sweep: 1object" in real.stderr  # the progress bar counts what it went through
    assert real.stdout.splitlines() == ["deleted 1 object(s)"]
    assert storage.head(orphan) is None and storage.head(kept) is not None


def test_check_reports_every_dependency_with_its_version(broker_settings):
    result = iskra(broker_settings, "check", "--skip-workers")

    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines()}
    assert set(lines) == {"database", "redis", "broker", "storage", "ffmpeg", "ffprobe"}
    assert all(line.startswith("ok ") for line in lines.values())
    assert "schema at head" in lines["database"]
    assert "ffmpeg version" in lines["ffmpeg"] and "ffprobe version" in lines["ffprobe"]
    assert re.search(r"Redis \d+\.\d+", lines["redis"])
    broker = "RabbitMQ" if taskqueue.uses_amqp(broker_settings.broker_url) else "Redis"
    assert re.search(rf"{broker} \d+\.\d+", lines["broker"]) and ":**@" in lines["broker"]


def test_check_fails_on_a_database_whose_schema_is_behind_and_an_unreachable_redis(settings):
    name = f"iskra_unmigrated_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(settings.database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        broken = settings.model_copy(
            update={
                "database_url": make_url(settings.database_url).set(database=name).render_as_string(False),
                "redis_url": "redis://127.0.0.1:1/0",
            }
        )
        result = iskra(broken, "check", "--skip-workers")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}"')

    assert result.exit_code == 1
    lines = {line.split()[1]: line for line in result.output.splitlines()}
    assert lines["database"].startswith("FAIL") and "run `iskra migrate`" in lines["database"]
    assert lines["redis"].startswith("FAIL") and lines["broker"].startswith("FAIL")
    assert lines["storage"].startswith("ok")


def test_migrate_brings_a_new_database_to_head_and_check_then_passes(broker_settings):
    name = f"iskra_fresh_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(broker_settings.database_url).set(drivername="postgresql").render_as_string(False)
    fresh_url = make_url(broker_settings.database_url).set(database=name).render_as_string(False)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        fresh = broker_settings.model_copy(update={"database_url": fresh_url})
        migrated = iskra(fresh, "migrate")
        checked = iskra(fresh, "check", "--skip-workers")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    assert migrated.exit_code == 0, migrated.output
    declared = [f"broker: queues {', '.join(taskqueue.QUEUES)} declared (quorum)"]
    on_rabbitmq = taskqueue.uses_amqp(broker_settings.broker_url)
    assert migrated.output.splitlines() == ["database: at head", *(declared if on_rabbitmq else [])]
    assert checked.exit_code == 0, checked.output
    assert "schema at head" in next(line for line in checked.output.splitlines() if "database" in line)


@pytest.mark.e2e
def test_check_pings_a_worker_on_every_queue(broker_settings, tmp_path):
    with running(
        worker_command(",".join(taskqueue.QUEUES)), settings_env(broker_settings), tmp_path / "w.log"
    ):
        result = iskra(broker_settings, "check", "--timeout", "60")

    assert result.exit_code == 0, result.output
    workers = next(line for line in result.output.splitlines() if line.split()[1] == "workers")
    assert workers.startswith("ok") and all(f"{queue}: " in workers for queue in taskqueue.QUEUES)


def test_while_the_local_stack_runs_the_cli_finds_its_database_and_redis(tmp_path, monkeypatch):
    (tmp_path / "local.env").write_text("DEV_JWT_SECRET=from-the-local-env-file\n")
    (tmp_path / "stack.env").write_text(
        "DATABASE_URL=postgresql+psycopg://db-of-the-stack\nREDIS_URL=redis://r:1/0\n"
    )
    monkeypatch.setenv("ISKRA_DATA_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "REDIS_URL", "DEV_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)

    found = load_settings()
    monkeypatch.setenv("REDIS_URL", "redis://from-the-environment:6379/0")
    overridden = load_settings()

    assert (found.database_url, found.redis_url) == ("postgresql+psycopg://db-of-the-stack", "redis://r:1/0")
    assert found.dev_jwt_secret.get_secret_value() == "from-the-local-env-file"
    assert overridden.redis_url == "redis://from-the-environment:6379/0"
