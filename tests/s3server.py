"""A real S3-compatible server (SeaweedFS `weed mini`) for the session, started only when a test needs it."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from pydantic import SecretStr

from core.settings import Settings
from models.storage.s3 import S3Storage

WEED = Path(sys.executable).parent / "weed"
ACCESS_KEY, SECRET_KEY = "iskra-test-access", "iskra-test-secret-key"
# weed opens 5 ports from a base, each with a gRPC twin 10000 above; B+4+10000 must stay a valid port.
LOWEST_BASE, HIGHEST_BASE = 20000, 55531
START_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    for _ in range(200):
        base = random.randint(LOWEST_BASE, HIGHEST_BASE)
        if all(_port_free(base + offset + grpc) for offset in range(5) for grpc in (0, 10000)):
            return base
    raise RuntimeError("no free port range for SeaweedFS")


def weed_command(data_dir: Path, config: Path, base: int) -> list[str]:
    """`weed mini` bound to localhost with strict S3 semantics (INFRA.md §3)."""
    return [
        str(WEED), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", f"-s3.config={config}",
        f"-master.port={base}", f"-volume.port={base + 1}", f"-filer.port={base + 2}",
        f"-s3.port={base + 3}", f"-admin.port={base + 4}",
        "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-idleTimeout=3", "-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false",
    ]  # fmt: skip


def _answers(server: S3Server) -> bool:
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
    )
    try:
        client.list_buckets()
    except Exception:
        return False
    return True


def _wait_until_up(process: subprocess.Popen, server: S3Server, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if _answers(server):
            return
        time.sleep(0.2)
    raise RuntimeError(f"weed S3 did not answer in {START_TIMEOUT_SECONDS}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_weed(root: Path) -> Iterator[S3Server]:
    """`weed mini` on free localhost ports, data under `root`, until the block ends (then SIGTERM)."""
    config = root / "s3.json"
    identity = {"name": "iskra", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    log = root / "weed.log"
    for attempt in range(3):
        base = _free_base()
        server = S3Server(f"http://127.0.0.1:{base + 3}", ACCESS_KEY, SECRET_KEY)
        data_dir = root / f"data-{attempt}"
        data_dir.mkdir()
        with log.open("ab") as output:
            command = weed_command(data_dir, config, base)
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=root)
        try:
            _wait_until_up(process, server, log)
        except RuntimeError:
            # Another process may have taken one of the ports between the probe and the bind.
            if process.poll() is None:
                _stop(process)
            if attempt == 2:
                raise
            continue
        try:
            yield server
        finally:
            _stop(process)
            Path(tempfile.gettempdir(), f"seaweedfs-s3-{base + 3}.sock").unlink(missing_ok=True)
        return


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3-compatible server for the whole session."""
    with running_weed(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_settings(settings: Settings, s3_server: S3Server) -> Settings:
    """The session settings pointed at the test S3 server and a fresh bucket of this run."""
    s3 = settings.model_copy(
        update={
            "storage_backend": "s3",
            "s3_endpoint_url": s3_server.endpoint_url,
            "s3_bucket": f"iskra-test-{uuid.uuid4().hex[:12]}",
            "s3_region": s3_server.region,
            "aws_access_key_id": s3_server.access_key,
            "aws_secret_access_key": SecretStr(s3_server.secret_key),
        }
    )
    S3Storage.from_settings(s3).ensure_bucket(s3.cors_allowed_origins)
    return s3
