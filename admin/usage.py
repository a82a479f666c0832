"""`iskra usage USER_ID`: a user's storage and generation usage against their plan."""

from __future__ import annotations

import click

from admin.common import open_sessions
from core.settings import Settings
from models.tables import User
from models.usage import usage_report


@click.command("usage")
@click.argument("user_id")
@click.pass_obj
def usage(settings: Settings, user_id: str) -> None:
    """Show USER_ID's tier, storage used of quota, and generations used this cycle."""
    with open_sessions(settings) as sessions, sessions() as session:
        user = session.get(User, user_id)
        if user is None:
            raise click.ClickException(f"no user {user_id!r}")
        report = usage_report(session, user)
    storage = report.storage
    click.echo(f"user      {user.user_id} ({user.email or 'no email'})")
    click.echo(f"tier      {user.tier}")
    click.echo(
        f"storage   {storage.used_bytes:,} of {storage.quota_bytes:,} bytes "
        f"({storage.percentage}%, {storage.status})"
    )
    for name, generations in (("images", report.images), ("videos", report.videos)):
        click.echo(f"{name:<9} {generations.used} of {generations.limit} ({generations.remaining} left)")
    click.echo(
        f"cycle     {report.cycle_start:%Y-%m-%d} to {report.cycle_end:%Y-%m-%d} "
        f"({report.days_until_reset()} days left)"
    )
