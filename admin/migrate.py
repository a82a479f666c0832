"""`iskra migrate`: bring the schema to head, make sure the S3 bucket exists, declare RabbitMQ's queues."""

from __future__ import annotations

import click

from core import taskqueue
from core.settings import Settings
from models import migrate as migrations


@click.command("migrate")
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Run pending Alembic migrations; create the S3 bucket and RabbitMQ's queues if they are missing."""
    migrations.upgrade(settings.database_url)
    click.echo("database: at head")
    if settings.storage_backend == "s3":
        from models.storage.s3 import S3Storage

        S3Storage.from_settings(settings).ensure_bucket(settings.cors_allowed_origins)
        click.echo(f"bucket {settings.s3_bucket}: ready")
    if taskqueue.uses_amqp(settings.broker_url):
        with taskqueue.broker_connection(taskqueue.make_client(settings), timeout=10) as connection:
            taskqueue.declare_topology(connection)
        click.echo(f"broker: queues {', '.join(taskqueue.QUEUES)} declared (quorum)")
