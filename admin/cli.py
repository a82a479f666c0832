"""`iskra`: the operators' command line."""

from __future__ import annotations

import os
from pathlib import Path

import click
from dotenv import dotenv_values

from models.settings import Settings
from web.auth import make_dev_token


def load_settings() -> Settings:
    """Settings from the environment, with the local stack's generated secrets filled in when present."""
    local_env = Path(os.environ.get("ISKRA_DATA_DIR", ".data")) / "local.env"
    for key, value in dotenv_values(local_env).items():
        if value is not None:
            os.environ.setdefault(key, value)
    return Settings()


@click.group()
@click.pass_context
def main(context: click.Context) -> None:
    """Operate an Iskra Media deployment."""
    context.obj = load_settings()


@main.command("dev-token")
@click.argument("user_id")
@click.option("--email", default="", help="Email claim to include.")
@click.option("--ttl", default=86_400, show_default=True, help="Lifetime in seconds.")
@click.pass_obj
def dev_token(settings: Settings, user_id: str, email: str, ttl: int) -> None:
    """Print a development bearer token for USER_ID (AUTH_MODE=dev only)."""
    if settings.auth_mode != "dev":
        raise click.ClickException("dev-token needs AUTH_MODE=dev")
    click.echo(make_dev_token(settings, user_id, email, ttl))
