"""Several hosts on one machine: network namespaces joined by a bridge, one worker host killed mid-run.

Hosts (each its own network namespace, address 10.213.77.x/24 on a bridge in a fifth, switch namespace;
nothing listens in the machine's own namespace and no other address is used):
  data  .1  PostgreSQL 15, Redis (rate limits), RabbitMQ (the broker), SeaweedFS (S3)
  api   .2  `iskra migrate`, the API and the events app (gunicorn, on the host's loopback), the client
  img1  .3  an images worker (prefork, 2 processes)          <- every process SIGKILLed mid-run
  img2  .4  an images worker (prefork, 2 processes)
Each host has its own data directory; workers share nothing but the data host's services.

Run as root from the repository root: `.venv/bin/python bench/multihost.py [--uploads 200]`. It prints
its progress and a summary, and exits 1 when an asset is not ready, a thumbnail is missing, its owner's
event stream (held on the API host's events app from before the first upload) did not hear it become
ready, or a user's storage charge differs from the sum of their assets. Its last output is committed as
bench/multihost-last-run.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Namespace names carry the run's pid, so that two runs on one machine (two test suites) never meet.
PREFIX = f"iskra-mh{os.getpid()}"
LEFTOVER = re.compile(r"iskra-mh(\d+)-\w+")
SUBNET = "10.213.77"
HOSTS = {"data": 1, "api": 2, "img1": 3, "img2": 4}
PG_BIN = Path("/usr/lib/postgresql/15/bin")
S3_BASE = 20000  # weed: master, volume, filer, s3 (+3), admin (+4)
USERS = 10


def ns(host: str) -> str:
    return f"{PREFIX}-{host}"


def address(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def sh(*command: str) -> None:
    subprocess.run(command, check=True)


def in_ns(host: str, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns(host), *command]


def build_network() -> None:
    """A bridge in the switch namespace, and a veth from each host namespace to it."""
    sh("ip", "netns", "add", ns("sw"))
    sh(*in_ns("sw", ["ip", "link", "add", "br0", "type", "bridge"]))
    sh(*in_ns("sw", ["ip", "link", "set", "br0", "up"]))
    for host, number in HOSTS.items():
        sh("ip", "netns", "add", ns(host))
        inner, outer = f"mh{number}h", f"mh{number}s"
        sh(
            "ip",
            "link",
            "add",
            inner,
            "netns",
            ns(host),
            "type",
            "veth",
            "peer",
            "name",
            outer,
            "netns",
            ns("sw"),
        )
        sh(*in_ns("sw", ["ip", "link", "set", outer, "master", "br0", "up"]))
        sh(*in_ns(host, ["ip", "addr", "add", f"{address(host)}/24", "dev", inner]))
        sh(*in_ns(host, ["ip", "link", "set", inner, "up"]))
        sh(*in_ns(host, ["ip", "link", "set", "lo", "up"]))


def pids_in(host: str) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", ns(host)], capture_output=True, text=True).stdout.split()


def tear_down(prefix: str = PREFIX) -> None:
    """SIGKILL whatever still runs in the namespaces, then delete them."""
    for name in [f"{prefix}-{host}" for host in [*HOSTS, "sw"]]:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def tear_down_leftovers() -> None:
    """The namespaces of earlier runs whose process is gone (interrupted): another live run's stay."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for pid in {int(match.group(1)) for match in LEFTOVER.finditer(listed)}:
        if not Path(f"/proc/{pid}").exists():
            tear_down(f"iskra-mh{pid}")


def wait_for_port(host: str, port: int, timeout: float = 60, loopback: bool = False) -> None:
    where = "127.0.0.1" if loopback else address(host)
    probe = f"import socket; socket.create_connection(('{where}', {port}), timeout=1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(in_ns(host, [sys.executable, "-c", probe]), capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{host}:{port} did not open within {timeout} s")


def start(stack: ExitStack, host: str, command: list[str], log: Path, env: dict | None = None, user=None):
    """A foreground process in `host`'s namespace, logging to `log`; killed with its namespace at the end."""
    out = stack.enter_context(log.open("wb"))
    if user:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command]
    return subprocess.Popen(in_ns(host, command), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def start_data_host(stack: ExitStack, work: Path) -> None:
    pg = work / "data" / "pg"
    pg.mkdir(parents=True)
    shutil.chown(pg, "postgres", "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(pg), "-U",
                    "postgres", "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)  # fmt: skip
    with (pg / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {SUBNET}.0/24 trust\n")
    listen = f"listen_addresses={address('data')}"
    start(stack, "data", [str(PG_BIN / "postgres"), "-D", str(pg), "-c", listen, "-c", "max_connections=200",
          "-k", str(pg)], work / "postgres.log", user="postgres")  # fmt: skip
    # Protected mode (on when no password is set) refuses every client but loopback: the other hosts' are
    # not, and only this namespace's bridge reaches the address it binds.
    start(stack, "data", ["/usr/bin/redis-server", "--bind", address("data"), "--port", "6379", "--save", "",
          "--appendonly", "no", "--protected-mode", "no"], work / "redis.log")  # fmt: skip

    rabbit = work / "data" / "rabbitmq"
    rabbit.mkdir()
    (rabbit / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {address('data')}:5672\nloopback_users = none\n"
    )
    shutil.chown(rabbit, "rabbitmq", "rabbitmq")
    rabbit_env = {
        **os.environ, "HOME": "/var/lib/rabbitmq", "RABBITMQ_NODENAME": "iskramh@localhost",
        "RABBITMQ_MNESIA_BASE": f"{rabbit}/mnesia", "RABBITMQ_LOG_BASE": f"{rabbit}/log",
        "RABBITMQ_CONFIG_FILE": f"{rabbit}/rabbitmq", "RABBITMQ_ENABLED_PLUGINS_FILE": f"{rabbit}/plugins",
        "RABBITMQ_PID_FILE": f"{rabbit}/pid",
    }  # fmt: skip
    start(stack, "data", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], work / "rabbitmq.log", rabbit_env,
          user="rabbitmq")  # fmt: skip

    s3 = work / "data" / "s3"
    s3.mkdir()
    identities = {"identities": [{"name": "media", "credentials": [{"accessKey": "AK", "secretKey": "SK"}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}  # fmt: skip
    (s3 / "s3.json").write_text(json.dumps(identities))
    ports = [f"-master.port={S3_BASE}", f"-volume.port={S3_BASE + 1}", f"-filer.port={S3_BASE + 2}",
             f"-s3.port={S3_BASE + 3}", f"-admin.port={S3_BASE + 4}"]  # fmt: skip
    start(stack, "data", [str(BIN / "weed"), "mini", f"-dir={s3}", f"-ip={address('data')}",
          f"-ip.bind={address('data')}", "-master.telemetry=false", f"-s3.config={s3 / 's3.json'}", *ports,
          "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-idleTimeout=3",
          "-s3.autoCreateBucket=false"], work / "s3.log")  # fmt: skip
    for port in (5432, 6379, 5672, S3_BASE + 3):
        wait_for_port("data", port)
    subprocess.run(in_ns("data", [str(PG_BIN / "psql"), "-h", address("data"), "-U", "postgres", "-qc",
                   "CREATE DATABASE iskra"]), check=True)  # fmt: skip


def app_env(host: str, work: Path) -> dict[str, str]:
    """The same settings on every host but the data directories, which are the host's own."""
    host_dir = work / host
    host_dir.mkdir(exist_ok=True)
    data = address("data")
    unlimited = {"perMinute": None, "perHour": None, "perDay": None}
    return {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"postgresql+psycopg://postgres@{data}:5432/iskra",
        "REDIS_URL": f"redis://{data}:6379/0",
        "CELERY_BROKER_URL": f"amqp://guest:guest@{data}:5672//",
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": f"http://{data}:{S3_BASE + 3}",
        "S3_BUCKET": "iskra-media",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "SK",
        "SIGNING_SECRET": "multihost-signing-secret-0123456789abcdef",
        "AUTH_MODE": "dev",
        "DEV_JWT_SECRET": "multihost-dev-jwt-secret-0123456789abcdef",
        "RATE_LIMIT_OVERRIDES": json.dumps({"default": {"upload": unlimited, "standard": unlimited}}),
        "ISKRA_DATA_DIR": str(host_dir / "data"),
        "PROMETHEUS_MULTIPROC_DIR": str(host_dir / "metrics"),
        "LOG_LEVEL": "WARNING",
    }


def say(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:5.1f} s] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.25, help="fraction ready when img1 is killed")
    parser.add_argument("client", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client == "client":
        from bench.multihost_client import run_client

        return run_client(args.uploads, USERS)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="iskra-mh-"))
    os.chmod(work, 0o755)
    started = time.monotonic()
    tear_down_leftovers()
    try:
        with ExitStack() as stack:
            build_network()
            start_data_host(stack, work)
            say(started, "data host up: PostgreSQL, Redis, RabbitMQ, S3")
            api_env = app_env("api", work)
            subprocess.run(in_ns("api", [str(BIN / "iskra"), "migrate"]), env=api_env, cwd=ROOT, check=True)
            start(stack, "api", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:8000",
                  "web.wsgi:app_from_environment()"], work / "api.log", api_env)  # fmt: skip
            start(stack, "api", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:8001",
                  "--workers", "1", "--worker-class", "gthread", "--threads", "100", "--worker-connections",
                  "100", "web.events.wsgi:app_from_environment()"], work / "events.log",
                  {**api_env, "PROMETHEUS_MULTIPROC_DIR": str(work / "api" / "events-metrics")})  # fmt: skip
            for host in ("img1", "img2"):
                start(stack, host, [str(BIN / "celery"), "-A", "workers.app", "worker", "-Q", "images",
                      "-c", "2", "-n", f"images@{host}", "--without-gossip", "--without-mingle"],
                      work / f"{host}.log", app_env(host, work))  # fmt: skip
            for port in (8000, 8001):
                wait_for_port("api", port, loopback=True)
            say(started, "api (with events) and two image-worker hosts up")

            client_command = [
                sys.executable,
                "-m",
                "bench.multihost",
                "client",
                "--uploads",
                f"{args.uploads}",
            ]
            client_env = {**api_env, "PYTHONPATH": str(ROOT)}
            client = subprocess.Popen(
                in_ns("api", client_command), env=client_env, cwd=ROOT, stdout=subprocess.PIPE, text=True
            )
            killed = False
            assert client.stdout is not None
            for line in client.stdout:
                say(started, line.rstrip())
                if not killed and line.startswith("progress"):
                    counts = dict(part.split("=") for part in line.split()[1:])
                    if int(counts["ready"]) >= args.kill_at * args.uploads:
                        pids = pids_in("img1")
                        for pid in pids:
                            os.kill(int(pid), signal.SIGKILL)
                        killed = True
                        say(started, f"KILLED host img1: SIGKILL to {len(pids)} processes ({counts})")
            status = client.wait()
        say(started, f"done, exit {status}; logs in {work}")
        return status
    finally:
        tear_down()


if __name__ == "__main__":
    sys.exit(main())
