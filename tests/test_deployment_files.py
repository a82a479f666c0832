"""The Procfile, docker-compose.yml and the operations doc describe the same processes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from honcho.environ import parse_procfile

from core.taskqueue import QUEUES

ROOT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = {"postgres", "redis", "s3", "migrate"}


def _procfile() -> dict[str, str]:
    return dict(parse_procfile((ROOT / "Procfile").read_text()).processes)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_procfile_process_and_nothing_else():
    services = set(_compose()["services"])

    assert services - INFRASTRUCTURE == set(_procfile())
    assert services >= INFRASTRUCTURE


def test_compose_commands_are_the_procfile_commands():
    services = _compose()["services"]
    for name, command in _procfile().items():
        shell, flag, line = services[name]["command"]
        # Compose would interpolate ${…} itself; $$ hands it to the container's shell unchanged.
        assert (shell, flag, line.replace("$$", "$")) == ("sh", "-c", command), name


def test_compose_has_the_stateful_services_the_app_points_at():
    compose = _compose()
    env = compose["services"]["web"]["environment"]

    assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and "@postgres:" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["S3_ENDPOINT_URL"] == "http://s3:8333" and env["STORAGE_BACKEND"] == "s3"
    assert env["ENVIRONMENT"] == "production" and env["AUTH_MODE"] == "clerk"
    for name in _procfile():
        depends_on = compose["services"][name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_procfile_serves_the_api_with_gunicorn_on_port():
    web = _procfile()["web"]

    assert "gunicorn" in web and "${PORT" in web
    assert {"worker-images", "worker-renders", "worker-videos", "beat", "flower"} <= set(_procfile())


def test_each_queue_has_its_own_worker_process_consuming_only_it():
    consumed = {}
    for name, command in _procfile().items():
        if " worker " in command:
            consumed[name] = command.split(" -Q ", 1)[1].split()[0]

    assert sorted(consumed.values()) == sorted(QUEUES)
    assert consumed["worker-renders"] == "renders" and consumed["worker-images"] == "images"


def test_the_operations_process_table_lists_exactly_the_procfile_processes():
    operations = (ROOT / "docs" / "operations.md").read_text()
    section = operations.split("## Processes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE))

    assert documented == set(_procfile())


def test_compose_bakes_no_default_for_any_secret():
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w*(?:SECRET|PASSWORD|AUTH|TOKEN)\w*):?-", text)
    required = set(re.findall(r"\$\{(\w+):\?", text))

    assert defaults == []
    assert {"SIGNING_SECRET", "AWS_SECRET_ACCESS_KEY", "FLOWER_BASIC_AUTH"} <= required


def test_the_s3_store_takes_its_identity_from_the_apps_secret(tmp_path):
    s3 = _compose()["services"]["s3"]
    # A stand-in for SeaweedFS that prints the identities file it was given.
    weed = tmp_path / "bin" / "weed"
    weed.parent.mkdir()
    weed.write_text(
        '#!/bin/sh\nfor arg; do case "$arg" in -s3.config=*) cat "${arg#-s3.config=}";; esac; done\n'
    )
    weed.chmod(0o755)
    secret = "s3-secret-" + "k" * 30
    env = {"PATH": f"{weed.parent}:/usr/bin:/bin", "TMPDIR": str(tmp_path), "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_ACCESS_KEY_ID": s3["environment"]["AWS_ACCESS_KEY_ID"]}  # fmt: skip

    started = subprocess.run(
        [*s3["entrypoint"], s3["command"][0].replace("$$", "$")], env=env, capture_output=True, check=True
    )

    identities = json.loads(started.stdout)["identities"]
    assert identities[0]["credentials"] == [{"accessKey": "iskra", "secretKey": secret}]
    assert (
        s3["environment"]["AWS_SECRET_ACCESS_KEY"]
        == _compose()["x-app"]["environment"]["AWS_SECRET_ACCESS_KEY"]
    )
    assert (tmp_path / "s3.json").stat().st_mode & 0o077 == 0
    assert not any("s3.json" in volume for volume in s3.get("volumes", []))


def test_compose_publishes_flower_on_loopback_only_and_guards_metrics():
    services = _compose()["services"]

    assert services["flower"]["ports"] and all(
        str(port).startswith("127.0.0.1:") for port in services["flower"]["ports"]
    )
    assert services["web"]["environment"]["METRICS_BASIC_AUTH"].startswith("${METRICS_BASIC_AUTH:?")
