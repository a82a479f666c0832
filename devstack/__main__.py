"""`python -m devstack`: run the whole stack locally (API, events, workers, beat, Flower) with honcho.

With no DATABASE_URL / REDIS_URL in the environment it starts an embedded PostgreSQL and an
embedded Redis owned by this process, migrates the database, then runs every Procfile process.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

from honcho.environ import parse_procfile
from honcho.manager import Manager

from devstack.embedded import prepare_runtime_dir, start_postgres, start_redis
from devstack.secrets import ensure_local_env
from models import migrate

ROOT = Path(__file__).resolve().parent.parent
STACK_ENV = "stack.env"  # read by the admin CLI while the stack runs


def _stack_environment(stack: ExitStack) -> dict[str, str]:
    data_dir = Path(os.environ.get("ISKRA_DATA_DIR", ROOT / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    prepare_runtime_dir(data_dir)
    env = {**ensure_local_env(data_dir), **os.environ}
    env["ISKRA_DATA_DIR"] = str(data_dir)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_postgres(data_dir, stack)
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = start_redis(data_dir, stack)
    metrics_dir = data_dir / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("PORT", "8000")
    env.setdefault("EVENTS_PORT", "8001")
    env.setdefault("FLOWER_PORT", "5555")
    env["CORS_ALLOWED_ORIGINS"] = with_console_origins(env.get("CORS_ALLOWED_ORIGINS"), env["PORT"])
    _publish_for_cli(data_dir, env, stack)
    return env


def with_console_origins(configured: str | None, port: str) -> str:
    """The allowed origins plus the console's own: its page on the API's port opens the events port."""
    origins = [o.strip() for o in (configured or "http://localhost:3000").split(",") if o.strip()]
    console = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    return ",".join(dict.fromkeys([*origins, *console]))


def _publish_for_cli(data_dir: Path, env: dict[str, str], stack: ExitStack) -> None:
    """Let `iskra` in another shell reach this stack's database and Redis (the ports change per start)."""
    path = data_dir / STACK_ENV
    path.write_text(f"DATABASE_URL={env['DATABASE_URL']}\nREDIS_URL={env['REDIS_URL']}\n")
    stack.callback(path.unlink, missing_ok=True)


def banner(env: dict[str, str], operator_set_flower_auth: bool) -> str:
    """Where everything listens; the Flower password only when the stack generated it."""
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    secret = "from FLOWER_BASIC_AUTH" if operator_set_flower_auth else f"password {password!r}"
    return (
        f"\nIskra Media: console http://localhost:{env['PORT']}/console/  "
        f"API http://127.0.0.1:{env['PORT']}  docs /docs/swagger/  "
        f"events http://127.0.0.1:{env.get('EVENTS_PORT', '8001')}/v1/events  "
        f"Flower http://127.0.0.1:{env['FLOWER_PORT']} (user {user!r}, {secret})\n"
        f"Token: .venv/bin/iskra dev-token user_local  (--console: a link that opens the console signed in)\n"
    )


def main() -> int:
    # honcho and the embedded servers stop cleanly on SIGTERM only if it unwinds like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with ExitStack() as stack:
        env = _stack_environment(stack)
        migrate.upgrade(env["DATABASE_URL"])
        manager = Manager()
        procfile = parse_procfile((ROOT / "Procfile").read_text())
        for name, command in procfile.processes.items():
            manager.add_process(name, command, env=env, cwd=str(ROOT))
        print(banner(env, operator_set_flower_auth="FLOWER_BASIC_AUTH" in os.environ), flush=True)
        manager.loop()
        return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
