"""Stock Uppy from the npm registry, bundled with esbuild, and Debian's Chromium, for the browser tests.

Packages are installed from each version's committed package-lock.json into .cache/uppy/<version>/ (npm's
download cache in .cache/npm), once per lock; later runs reuse both. Without Chromium or npm the tests are
skipped locally with the reason shown, and fail in CI (`CI` set), where `.ci/run` installs them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
VERSIONS = ("uppy6", "uppy5")


def missing(what: str) -> None:
    """Fail in CI, skip with the reason elsewhere: a browser test is never skipped silently in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str:
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    missing("Debian's chromium (apt-get install -y chromium)")
    raise AssertionError  # unreachable


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def bundle(version: str) -> Path:
    """`tests/browser/<version>/entry.js` bundled with its stock Uppy as one IIFE script."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        missing("npm and node")
    source, work = SOURCES / version, CACHE / "uppy" / version
    lock = (source / "package-lock.json").read_bytes()
    stamp, output = work / ".installed", work / "bundle.js"
    digest = hashlib.sha256(lock + (source / "entry.js").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and output.exists():
        return output
    work.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json", "entry.js"):
        shutil.copyfile(source / name, work / name)
    npm = ["npm", "ci", "--cache", str(CACHE / "npm"), "--prefer-offline", "--no-audit", "--no-fund"]
    _run(npm, work)
    script = (
        "require('esbuild').buildSync({entryPoints: ['entry.js'], bundle: true, format: 'iife',"
        " target: 'chrome120', outfile: 'bundle.js', logLevel: 'error'})"
    )
    _run(["node", "-e", script], work)
    stamp.write_text(digest)
    return output


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
