"""`iskra check`: is this deployment able to work? Database, schema, Redis, storage, ffmpeg, workers."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable

import click
import redis
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from admin.common import open_sessions
from core import taskqueue
from core.settings import Settings
from models import migrate
from models.db import make_engine
from models.storage import make_storage
from models.tables import WorkerPing


def check_database(settings: Settings) -> str:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            version = connection.scalar(text("SHOW server_version"))
        current, head = migrate.pending_revisions(engine)
    finally:
        engine.dispose()
    if current != head:
        raise RuntimeError(
            f"PostgreSQL {version} reachable, but schema at {current}, head is {head}: run `iskra migrate`"
        )
    return f"PostgreSQL {version}, schema at head ({head})"


def check_redis(settings: Settings) -> str:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
        return f"Redis {client.info('server')['redis_version']}"
    finally:
        client.close()


def check_storage(settings: Settings) -> str:
    make_storage(settings).check()
    where = settings.s3_bucket if settings.storage_backend == "s3" else settings.local_storage_root
    return f"{settings.storage_backend} ({where})"


def tool_version(name: str) -> str:
    """The first line of `<name> -version`, or RuntimeError when the binary is missing."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found on PATH")
    output = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=10, check=True).stdout
    return output.splitlines()[0] if output else path


def check_workers(settings: Settings, timeout: float) -> str:
    """Send a ping through every queue; each must be stamped by a worker within `timeout` seconds."""
    pings = {queue: uuid.uuid4() for queue in taskqueue.QUEUES}
    client = taskqueue.make_client(settings)
    with open_sessions(settings) as sessions:
        with sessions.begin() as session:
            session.add_all(WorkerPing(id=ping_id, queue=queue) for queue, ping_id in pings.items())
        for queue, ping_id in pings.items():
            # The ping task is registered on every worker; the explicit queue picks which pool answers.
            client.send_task(taskqueue.PING, args=[str(ping_id)], queue=queue, expires=timeout)
        answered = _wait_for_pings(sessions, list(pings.values()), timeout)
        with sessions.begin() as session:
            session.execute(delete(WorkerPing).where(WorkerPing.id.in_(list(pings.values()))))
    silent = [queue for queue, ping_id in pings.items() if ping_id not in answered]
    if silent:
        raise RuntimeError(f"no worker answered within {timeout:g} s on: {', '.join(silent)}")
    return ", ".join(f"{queue}: {answered[ping_id]}" for queue, ping_id in pings.items())


def _wait_for_pings(
    sessions: sessionmaker[Session], ping_ids: list[uuid.UUID], timeout: float
) -> dict[uuid.UUID, str | None]:
    deadline = time.monotonic() + timeout
    while True:
        with sessions() as session:
            done = dict(
                session.execute(
                    select(WorkerPing.id, WorkerPing.worker).where(
                        WorkerPing.id.in_(ping_ids), WorkerPing.completed_at.is_not(None)
                    )
                ).all()
            )
        if len(done) == len(ping_ids) or time.monotonic() >= deadline:
            return done
        time.sleep(0.2)


@click.command("check")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for workers to answer.")
@click.option("--skip-workers", is_flag=True, help="Do not ping the worker pools.")
@click.pass_obj
def check(settings: Settings, timeout: float, skip_workers: bool) -> None:
    """Check every dependency; exit 1 when any fails."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("database", lambda: check_database(settings)),
        ("redis", lambda: check_redis(settings)),
        ("storage", lambda: check_storage(settings)),
        ("ffmpeg", lambda: tool_version("ffmpeg")),
        ("ffprobe", lambda: tool_version("ffprobe")),
    ]
    if not skip_workers:
        checks.append(("workers", lambda: check_workers(settings, timeout)))
    failed = 0
    for name, probe in checks:
        try:
            click.echo(f"ok    {name:<9} {probe()}")
        except Exception as error:
            failed += 1
            click.echo(f"FAIL  {name:<9} {type(error).__name__}: {error}")
    if failed:
        raise SystemExit(1)
