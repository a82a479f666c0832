"""The local stack's files: secrets made once and kept private, URLs for the CLI, the Flower password."""

from __future__ import annotations

import stat
from contextlib import ExitStack

from dotenv import dotenv_values

from devstack.__main__ import STACK_ENV, _publish_for_cli, banner, with_console_origins
from devstack.secrets import ensure_local_env, local_env_path


def test_first_start_generates_every_development_secret_into_a_private_file(tmp_path):
    values = ensure_local_env(tmp_path)

    assert set(values) == {"DEV_JWT_SECRET", "SIGNING_SECRET", "FLOWER_BASIC_AUTH"}
    user, _, password = values["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "operator" and len(password) == 16
    assert len(values["DEV_JWT_SECRET"]) >= 32 and values["DEV_JWT_SECRET"] != values["SIGNING_SECRET"]
    assert dotenv_values(local_env_path(tmp_path)) == values
    assert stat.S_IMODE(local_env_path(tmp_path).stat().st_mode) == 0o600


def test_later_starts_keep_the_same_secrets(tmp_path):
    first = ensure_local_env(tmp_path)

    assert ensure_local_env(tmp_path) == first


def test_a_missing_secret_is_added_without_touching_the_others(tmp_path):
    local_env_path(tmp_path).write_text("DEV_JWT_SECRET=kept-secret\nSIGNING_SECRET=kept-too\n")

    values = ensure_local_env(tmp_path)

    assert (values["DEV_JWT_SECRET"], values["SIGNING_SECRET"]) == ("kept-secret", "kept-too")
    assert values["FLOWER_BASIC_AUTH"].startswith("operator:")


def test_the_banner_prints_a_generated_flower_password_but_not_one_the_operator_chose():
    env = {"PORT": "8000", "FLOWER_PORT": "5555", "FLOWER_BASIC_AUTH": "admin:s3cret-choice"}

    generated, chosen = (
        banner(env, operator_set_flower_auth=False),
        banner(env, operator_set_flower_auth=True),
    )

    assert "Flower http://127.0.0.1:5555 (user 'admin', password 's3cret-choice')" in generated
    assert "s3cret-choice" not in chosen and "from FLOWER_BASIC_AUTH" in chosen


def test_the_running_stack_publishes_its_urls_for_the_cli_and_removes_them_when_it_stops(tmp_path):
    env = {
        "DATABASE_URL": "postgresql+psycopg://postgres@/iskra?host=/x",
        "REDIS_URL": "redis://127.0.0.1:4/0",
    }

    with ExitStack() as stack:
        _publish_for_cli(tmp_path, env, stack)
        published = dotenv_values(tmp_path / STACK_ENV)

    assert published == env
    assert not (tmp_path / STACK_ENV).exists()


def test_the_stack_allows_the_consoles_origin_beside_the_configured_ones_for_the_event_stream():
    assert with_console_origins(None, "8000") == (
        "http://localhost:3000,http://localhost:8000,http://127.0.0.1:8000"
    )
    assert with_console_origins("https://canvas.example, http://localhost:8000", "8000") == (
        "https://canvas.example,http://localhost:8000,http://127.0.0.1:8000"
    )
