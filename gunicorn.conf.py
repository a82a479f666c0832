"""gunicorn settings for the API (`gunicorn -c gunicorn.conf.py …`): JSON logs, graceful stop, metrics."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from core.logs import configure_logging
from core.settings import Settings

settings = Settings()

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads, not sync workers: a client trickling an upload body holds one thread of one worker, not a whole
# worker, so a few slow clients cannot starve everyone else. The body is read outside any transaction, so a
# slow upload holds no database connection either.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
# A worker accepts about as many connections as it has threads: whatever it accepted is served at once, and
# the rest wait in the listen backlog for a worker with a free thread instead of behind a slow upload. The
# few beyond the threads are for idle keep-alive connections: gunicorn keeps a connection open after its
# response only while fewer than `worker_connections - threads` are kept, so with none it closed every
# connection and each request paid for a new one (~2.5 ms of API CPU per upload, bench/upload_cpu.py).
keepalive_connections = max(4, threads // 4)
worker_connections = threads + keepalive_connections
# On SIGTERM the master stops accepting and gives in-flight requests this long before killing workers.
graceful_timeout = 30
# With threads this is the worker's heartbeat (its main loop checks in every second), not a request
# deadline: an upload over a slow link is never cut, however long it takes.
timeout = 60
keepalive = 5
# One control socket per user home would be shared by every gunicorn on the machine; nothing uses it.
control_socket_disable = True
# The heartbeat file on tmpfs: a slow or overlay disk must not make the master think a worker hung.
SHM = Path("/dev/shm")  # noqa: S108 - gunicorn's documented choice for its heartbeat files
worker_tmp_dir = str(SHM) if SHM.is_dir() else None

# The app logs one JSON `request` event per request (with its request id); gunicorn's own lines
# propagate to the root logger, which configure_logging gives the same JSON renderer.
accesslog = None
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": settings.log_level.upper(), "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": [], "propagate": True},
        # Off: the app's own `request` event says more (route template, request id, duration).
        "gunicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
    },
}

# prometheus_client keeps each worker's values in files here and /metrics merges them, so totals are
# right whichever worker answers a scrape. Workers inherit this environment when the master forks.
if settings.prometheus_multiproc_dir is None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="iskra-metrics-")
else:
    settings.prometheus_multiproc_dir.mkdir(parents=True, exist_ok=True)


def on_starting(_server: object) -> None:
    configure_logging(settings)


def post_fork(_server: object, _worker: object) -> None:
    from core.malloc import keep_large_buffers

    keep_large_buffers()


def child_exit(_server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    # Live gauges of a dead worker must not linger; its counters stay counted.
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
