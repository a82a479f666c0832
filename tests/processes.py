"""Real child processes for end-to-end tests: Celery workers (and others) configured from Settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings."""
    env = {key: value for key, value in os.environ.items() if key.isupper()}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, tuple):
            value = ",".join(value)
        env[(field.alias or name).upper()] = str(value)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@contextmanager
def running(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Run `command` for the duration of the block; stop it with SIGTERM, then SIGKILL."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_command(queues: str, concurrency: int = 1, pool: str = "prefork") -> list[str]:
    return [
        str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", queues, "-P", pool,
        "-c", str(concurrency), "-E", "--without-mingle", "--without-gossip", "-l", "info",
        "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
    ]  # fmt: skip


def pool_children(worker_pid: int) -> list[int]:
    """A prefork worker's pool processes: its children that are forks of it (the same command line), not
    a short-lived program it runs (Python's `platform` runs `uname -p` while the worker starts)."""
    own = Path(f"/proc/{worker_pid}/cmdline").read_bytes()
    pool = []
    for pid in Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split():
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == own:
                pool.append(int(pid))
        except OSError:
            continue  # it ended meanwhile
    return sorted(pool)


def worker_app_facts(settings: Settings, expression: str) -> object:
    """`expression`, evaluated as JSON in a fresh process that loaded the worker app `w` and its tasks."""
    load = "import json, workers.app as w; w.app.loader.import_default_modules()"
    script = f"{load}; print(json.dumps({expression}))"
    output = subprocess.run(
        [sys.executable, "-c", script], env=settings_env(settings), cwd=ROOT, capture_output=True, check=True
    )
    return json.loads(output.stdout.splitlines()[-1])


def wait_until(condition: Callable[[], object], timeout: float = 30, interval: float = 0.1) -> object:
    """Poll `condition` until it returns something truthy; fail the test when time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
