"""`iskra set-tier`: move a user to another plan."""

from __future__ import annotations

import click

from core.settings import Settings
from models.db import make_engine, make_sessionmaker
from models.errors import DomainError
from models.generations import is_upgrade
from models.generations import set_tier as change_tier


@click.command("set-tier")
@click.argument("user_id")
@click.argument("tier")
@click.pass_obj
def set_tier(settings: Settings, user_id: str, tier: str) -> None:
    """Set USER_ID's plan to TIER (free or pro; the legacy `paid` means pro). Upgrades reset the counters."""
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with make_sessionmaker(engine).begin() as session:
            old, new = change_tier(session, user_id, tier)
    except DomainError as error:
        raise click.ClickException(error.detail) from None
    finally:
        engine.dispose()
    reset = " (generation counters reset)" if is_upgrade(old, new) else ""
    click.echo(f"{user_id}: {old} -> {new}{reset}")
