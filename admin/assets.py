"""`iskra assets failed|requeue`: see failed assets and hand them back to the workers."""

from __future__ import annotations

import uuid

import click
from tqdm import tqdm

from admin.common import open_sessions
from core import taskqueue
from core.settings import Settings
from models.asset_lifecycle import failed_assets, reset_failed


@click.group("assets")
def assets() -> None:
    """Failed assets."""


@assets.command("failed")
@click.option("--user", "user_id", help="Only this user's assets.")
@click.option("--limit", default=100, show_default=True, help="At most this many rows.")
@click.pass_obj
def list_failed(settings: Settings, user_id: str | None, limit: int) -> None:
    """List failed assets, most recent first."""
    with open_sessions(settings) as sessions, sessions() as session:
        rows = failed_assets(session, user_id, limit)
        lines = [
            (str(a.id), a.user_id, a.type, a.error or "", a.attempts, f"{a.updated_at:%Y-%m-%d %H:%M}")
            for a in rows
        ]
    if not lines:
        click.echo("no failed assets")
        return
    click.echo(f"{'asset':<36}  {'user':<24}  {'type':<5}  {'error':<24}  {'tries':>5}  failed at")
    for asset_id, owner, kind, error, attempts, when in lines:
        click.echo(f"{asset_id:<36}  {owner:<24.24}  {kind:<5}  {error:<24.24}  {attempts:>5}  {when}")


@assets.command("requeue")
@click.argument("asset_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every failed asset.")
@click.pass_obj
def requeue(settings: Settings, asset_ids: tuple[str, ...], all_failed: bool) -> None:
    """Reset failed assets (ASSET_IDS, or --all-failed) to pending and send them to their queue."""
    if bool(asset_ids) == all_failed:
        raise click.UsageError("give asset ids or --all-failed (not both)")
    for asset_id in asset_ids:
        try:
            uuid.UUID(asset_id)
        except ValueError:
            raise click.BadParameter(f"{asset_id!r} is not an asset id", param_hint="ASSET_IDS") from None
    with open_sessions(settings) as sessions, sessions.begin() as session:
        reset = reset_failed(session, None if all_failed else list(asset_ids))
    client = taskqueue.make_client(settings)
    # Sent only after the commit above, so a worker never finds the row still failed.
    for asset_id, task_name in tqdm(reset, desc="re-queue", unit="asset", disable=not reset):
        taskqueue.send(client, task_name, asset_id)
    click.echo(f"re-queued {len(reset)} asset(s)")
