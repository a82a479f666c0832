"""`iskra migrate`: bring the schema to head and make sure the S3 bucket exists."""

from __future__ import annotations

import click

from core.settings import Settings
from models import migrate as migrations


@click.command("migrate")
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Run pending Alembic migrations; with STORAGE_BACKEND=s3, create the bucket if it is missing."""
    migrations.upgrade(settings.database_url)
    click.echo("database: at head")
    if settings.storage_backend == "s3":
        from models.storage.s3 import S3Storage

        S3Storage.from_settings(settings).ensure_bucket(settings.cors_allowed_origins)
        click.echo(f"bucket {settings.s3_bucket}: ready")
