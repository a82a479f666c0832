"""One storage suite, two real backends: every test taking `storage` runs on local disk and on S3."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models.storage import Storage
from models.storage.local import LocalStorage
from models.storage.s3 import S3Storage
from models.storage.signing import DownloadSigner
from tests.conftest import build_services
from web.app import create_app

Fetched = tuple[int, dict[str, str], bytes]


class GeneratedStream(io.RawIOBase):
    """A non-seekable stream of `size` bytes made on the fly, hashing what it hands out."""

    def __init__(self, size: int, seed: str = "iskra") -> None:
        self.remaining, self.seed, self.counter = size, seed.encode(), 0
        self.sha256 = hashlib.sha256()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.pending and self.remaining:
            block = hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest() * 2048
            self.pending, self.counter = block[: self.remaining], self.counter + 1
            self.remaining -= len(self.pending)
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.sha256.update(self.pending[:count])
        self.pending = self.pending[count:]
        return count


@pytest.fixture
def namespace() -> str:
    """A key prefix of this test's own (the S3 bucket is shared by the session)."""
    return f"test-{uuid.uuid4().hex}/"


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage(backend: str, request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Storage:
    if backend == "s3":
        return S3Storage.from_settings(request.getfixturevalue("s3_settings"))
    return LocalStorage(tmp_path / "media", DownloadSigner(settings.signing_secret.get_secret_value()))


@pytest.fixture
def files_client(
    storage: Storage, settings: Settings, engine: Engine, sessions: sessionmaker[Session]
) -> FlaskClient:
    """The API serving this test's local storage (its /files/<token> route)."""
    services = dataclasses.replace(build_services(settings, engine, sessions), storage_override=storage)
    return create_app(settings, services).test_client()


@pytest.fixture
def fetch(backend: str, request: pytest.FixtureRequest) -> Callable[..., Fetched]:
    """GET a storage URL for real: over HTTP for S3, through the API for local (relative /files/ paths)."""

    def via_api(url: str, headers: dict[str, str] | None = None) -> Fetched:
        with request.getfixturevalue("files_client").get(url, headers=headers) as response:
            return response.status_code, dict(response.headers), response.get_data()

    def via_http(url: str, headers: dict[str, str] | None = None) -> Fetched:
        response = requests.get(url, headers=headers, timeout=10)
        return response.status_code, dict(response.headers), response.content

    return via_http if backend == "s3" else via_api
