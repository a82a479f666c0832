"""`iskra`: the operators' command line."""

from __future__ import annotations

import os
from pathlib import Path

import click
from pydantic import ValidationError

from admin.assets import assets
from admin.check import check
from admin.migrate import migrate
from admin.reconcile import reconcile, sweep
from admin.tiers import set_tier
from admin.usage import usage
from core.settings import Settings
from web.auth import make_dev_token


def load_settings() -> Settings:
    """Settings from the environment, filled in from the local stack's files when they exist.

    local.env holds its generated secrets; stack.env, while it runs, its database and Redis URLs.
    """
    data_dir = Path(os.environ.get("ISKRA_DATA_DIR", ".data"))
    # pydantic-settings lets the environment win over the files, as the local stack's processes do.
    return Settings(_env_file=(data_dir / "local.env", data_dir / "stack.env"))


@click.group()
@click.pass_context
def main(context: click.Context) -> None:
    """Operate an Iskra Media deployment."""
    try:
        context.obj = load_settings()
    except ValidationError as error:
        raise click.ClickException(f"the settings are not valid:\n{error}") from None


@main.command("dev-token")
@click.argument("user_id")
@click.option("--email", default="", help="Email claim to include.")
@click.option("--ttl", default=86_400, show_default=True, help="Lifetime in seconds.")
@click.option("--console", is_flag=True, help="Print a link that opens the console signed in instead.")
@click.option(
    "--api-url", default=None, help="The API's address in the link (default http://localhost:$PORT)."
)
@click.pass_obj
def dev_token(
    settings: Settings, user_id: str, email: str, ttl: int, console: bool, api_url: str | None
) -> None:
    """Print a development bearer token for USER_ID (AUTH_MODE=dev only)."""
    if settings.auth_mode != "dev":
        raise click.ClickException("dev-token needs AUTH_MODE=dev")
    try:
        token = make_dev_token(settings, user_id, email, ttl)
    except RuntimeError as refused:
        raise click.ClickException(str(refused)) from None
    if console:
        # The fragment never reaches a server or a log; the page reads it and clears the address bar.
        base = (api_url or f"http://localhost:{settings.port}").rstrip("/")
        click.echo(f"{base}/console/#token={token}")
    else:
        click.echo(token)


main.add_command(set_tier)
for command in (usage, assets, reconcile, sweep, check, migrate):
    main.add_command(command)
