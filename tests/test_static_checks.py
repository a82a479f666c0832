"""The static checks run with the suite: ruff lint and format, mypy, and models that agree with migrations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TYPED_PACKAGES = ("core", "web", "workers", "models", "admin")

pytestmark = pytest.mark.static


def _run_module(*args: str, env: dict[str, str] | None = None) -> str:
    """Run `python -m <args>` from the project root; its output, or a failure that shows it."""
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`{' '.join(args)}` exited {result.returncode}:\n{output}"
    return output


def test_ruff_finds_nothing_to_fix():
    _run_module("ruff", "check", ".")


def test_ruff_format_would_change_no_file():
    _run_module("ruff", "format", "--check", ".")


def test_mypy_finds_no_type_errors_in_every_module_of_the_typed_packages():
    output = _run_module("mypy")

    checked = re.search(r"no issues found in (\d+) source files", output)
    modules = sum(1 for package in TYPED_PACKAGES for _ in (ROOT / package).rglob("*.py"))
    assert checked is not None and int(checked.group(1)) == modules, output


def test_models_and_migrations_agree_on_a_database_migrated_to_head(database_url: str):
    # The run's own database, created empty and upgraded to head by the `database_url` fixture.
    _run_module("alembic", "check", env={**os.environ, "DATABASE_URL": database_url})
