"""`iskra set-tier USER_ID TIER`."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from admin.cli import main
from models.users import ensure_user
from tests.processes import settings_env


@pytest.fixture
def committed_user(engine):
    """A free user committed to the database (the CLI uses its own connection), removed afterwards."""
    from sqlalchemy.orm import Session

    user_id = f"user_cli_{uuid.uuid4().hex[:8]}"
    with Session(engine) as session, session.begin():
        ensure_user(session, user_id)
        session.execute(
            text("UPDATE users SET images_used_in_period = 12, videos_used_in_period = 2 WHERE user_id = :u"),
            {"u": user_id},
        )
    yield user_id
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM users WHERE user_id = :u"), {"u": user_id})


def tier_and_counters(engine, user_id):
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text(
                    "SELECT tier, images_used_in_period, videos_used_in_period FROM users WHERE user_id = :u"
                ),
                {"u": user_id},
            ).one()
        )


def test_set_tier_upgrades_paid_to_pro_and_resets_the_counters(settings, engine, committed_user):
    result = CliRunner().invoke(main, ["set-tier", committed_user, "paid"], env=settings_env(settings))

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{committed_user}: free -> pro (generation counters reset)"
    assert tier_and_counters(engine, committed_user) == ("pro", 0, 0)


def test_the_new_tier_shows_in_usage_at_once(settings, engine, committed_user, committed_app, auth_header):
    CliRunner().invoke(main, ["set-tier", committed_user, "pro"], env=settings_env(settings))

    usage = committed_app.test_client().get("/v1/me/usage", headers=auth_header(committed_user)).json

    assert usage["generations"]["image"] == {"used": 0, "limit": 130, "remaining": 130, "percentage": 0.0}


def test_set_tier_refuses_an_unknown_tier_or_user(settings, engine, committed_user):
    runner, env = CliRunner(), settings_env(settings)

    unknown_tier = runner.invoke(main, ["set-tier", committed_user, "platinum"], env=env)
    unknown_user = runner.invoke(main, ["set-tier", "user_nobody", "pro"], env=env)

    assert unknown_tier.exit_code == 1
    assert "Unknown tier" in unknown_tier.output
    assert unknown_user.exit_code == 1
    assert "No user" in unknown_user.output
    assert tier_and_counters(engine, committed_user) == ("free", 12, 2)
