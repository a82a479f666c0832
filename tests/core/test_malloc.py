"""core.malloc: glibc told to keep MiB-sized buffers, in every API worker."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from core import malloc

ROOT = Path(__file__).resolve().parents[2]


def test_the_thresholds_are_applied_on_glibc(monkeypatch):
    calls = []
    real = malloc.ctypes.CDLL

    class Recording:
        def __init__(self, name):
            self._libc = real(name)

        def mallopt(self, parameter, value):
            calls.append((parameter, value))
            return self._libc.mallopt(parameter, value)

    monkeypatch.setattr(malloc.ctypes, "CDLL", Recording)

    assert malloc.keep_large_buffers() is True
    assert calls == [
        (malloc.M_MMAP_THRESHOLD, malloc.MMAP_THRESHOLD_BYTES),
        (malloc.M_TRIM_THRESHOLD, malloc.TRIM_THRESHOLD_BYTES),
    ]


def test_a_c_library_without_mallopt_is_left_alone():
    assert malloc.keep_large_buffers("libdoes-not-exist.so.0") is False


def test_every_forked_api_worker_applies_them(monkeypatch, tmp_path):
    applied = []
    monkeypatch.setattr(malloc, "keep_large_buffers", lambda: applied.append(True) or True)
    # The config sets the metrics directory in the environment when none is given: this test's own.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    config["post_fork"](object(), object())

    assert applied == [True]


@pytest.fixture(autouse=True)
def _restore_defaults():
    yield
    # Back to glibc's defaults for the rest of the test process (a threshold of 128 KiB, trim 128 KiB).
    libc = malloc.ctypes.CDLL(None)
    libc.mallopt(malloc.M_MMAP_THRESHOLD, 128 * 1024)
    libc.mallopt(malloc.M_TRIM_THRESHOLD, 128 * 1024)
