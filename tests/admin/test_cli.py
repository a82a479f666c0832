"""`iskra dev-token USER_ID`: a development token the API accepts for that user."""

from __future__ import annotations

import jwt
from click.testing import CliRunner

from admin.cli import main
from tests.processes import settings_env


def me(app, token: str):
    return app.test_client().get("/v1/me", headers={"Authorization": f"Bearer {token}"})


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
