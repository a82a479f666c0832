"""The Procfile, docker-compose.yml and README describe the same processes."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from honcho.environ import parse_procfile

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
    assert {"worker-images", "worker-videos", "beat", "flower"} <= set(_procfile())


def test_the_readme_process_table_lists_exactly_the_procfile_processes():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Processes", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE))

    assert documented == set(_procfile())
