"""`iskra reconcile` and `iskra sweep`: run the storage maintenance now instead of waiting for beat."""

from __future__ import annotations

from datetime import timedelta

import click
from tqdm import tqdm

from admin.common import open_sessions
from core.settings import Settings
from models.assets import reconcile_storage_usage
from models.maintenance import abandoned_objects, try_reconcile_lock, try_sweep_lock
from models.storage import make_storage


@click.command("reconcile")
@click.pass_obj
def reconcile(settings: Settings) -> None:
    """Set every user's storage usage to the sum of their assets' sizes; show what drifted."""
    with open_sessions(settings) as sessions, sessions.begin() as session:
        if not try_reconcile_lock(session):
            raise click.ClickException("another reconciliation is running; try again later")
        drifts = reconcile_storage_usage(session)
    for drift in drifts:
        click.echo(f"{drift.user_id}: {drift.recorded_bytes:,} -> {drift.actual_bytes:,} bytes")
    click.echo(f"fixed {len(drifts)} user(s)")


@click.command("sweep")
@click.option("--grace-minutes", type=int, help="Only objects older than this (default: the setting).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.pass_obj
def sweep(settings: Settings, grace_minutes: int | None, dry_run: bool) -> None:
    """Delete stored objects that no asset or project owns (abandoned uploads, dead renditions)."""
    grace = timedelta(
        minutes=settings.abandoned_upload_grace_minutes if grace_minutes is None else grace_minutes
    )
    storage = make_storage(settings)
    found = 0
    with open_sessions(settings) as sessions, sessions.begin() as session:
        if not try_sweep_lock(session):
            raise click.ClickException("another sweep is running; try again later")
        for key in tqdm(abandoned_objects(session, storage, grace), desc="sweep", unit="object"):
            found += 1
            if dry_run:
                tqdm.write(key)
            else:
                storage.delete(key)
    click.echo(f"{'would delete' if dry_run else 'deleted'} {found} object(s)")
