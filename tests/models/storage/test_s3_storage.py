"""S3Storage against a real SeaweedFS: boto errors surface only as StorageError/ObjectMissing."""

from __future__ import annotations

import io
import socket
import uuid

import pytest
import requests
from botocore.response import StreamingBody
from urllib3.exceptions import ProtocolError

from core.settings import Settings
from models.errors import ObjectMissing, StorageError
from models.storage import make_storage
from models.storage.s3 import S3Storage, _Body


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3(s3_settings: Settings) -> S3Storage:
    return S3Storage.from_settings(s3_settings)


def test_make_storage_builds_the_s3_backend_from_settings(s3_settings: Settings) -> None:
    storage = make_storage(s3_settings)
    assert isinstance(storage, S3Storage)
    assert storage.bucket == s3_settings.s3_bucket


def test_an_unreachable_server_raises_storage_error_not_a_botocore_error(s3_settings: Settings) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    storage = S3Storage.from_settings(s3_settings.model_copy(update={"s3_endpoint_url": endpoint}))
    for operation in (
        storage.check,
        lambda: storage.head("a/b"),
        lambda: storage.put("a/b", io.BytesIO(b"x"), content_type="text/plain"),
        lambda: storage.delete("a/b"),
        lambda: list(storage.iter_objects("a/")),
    ):
        with pytest.raises(StorageError) as raised:
            operation()
        assert type(raised.value).__module__ == "models.errors"


def test_a_missing_bucket_fails_the_check_and_refuses_writes(s3_settings: Settings) -> None:
    storage = S3Storage.from_settings(
        s3_settings.model_copy(update={"s3_bucket": f"absent-{uuid.uuid4().hex}"})
    )
    with pytest.raises(StorageError, match="does not exist"):
        storage.check()
    with pytest.raises(StorageError) as raised:
        storage.put("a/b", io.BytesIO(b"x"), content_type="text/plain")
    assert not isinstance(raised.value, ObjectMissing)


def test_ensure_bucket_creates_a_missing_bucket_and_is_idempotent(s3_settings: Settings) -> None:
    storage = S3Storage.from_settings(
        s3_settings.model_copy(update={"s3_bucket": f"fresh-{uuid.uuid4().hex}"})
    )
    storage.ensure_bucket()
    storage.ensure_bucket()
    storage.check()


def test_wrong_credentials_raise_storage_error(s3_settings: Settings) -> None:
    storage = S3Storage.from_settings(s3_settings.model_copy(update={"aws_access_key_id": "nobody"}))
    with pytest.raises(StorageError):
        storage.head("a/b")


def test_a_presigned_url_is_path_style_on_the_configured_endpoint(
    s3: S3Storage, s3_settings: Settings
) -> None:
    s3.put("path-style/x.webp", io.BytesIO(b"webp"), content_type="image/webp")
    url = s3.url("path-style/x.webp", expires_in=60)
    assert url.startswith(f"{s3_settings.s3_endpoint_url}/{s3_settings.s3_bucket}/path-style/x.webp?")
    assert "X-Amz-Signature=" in url
    assert requests.get(url, timeout=10).content == b"webp"


def test_a_presigned_url_for_one_key_does_not_open_another(s3: S3Storage) -> None:
    s3.put("swap/mine", io.BytesIO(b"mine"), content_type="text/plain")
    s3.put("swap/yours", io.BytesIO(b"yours"), content_type="text/plain")
    url = s3.url("swap/mine", expires_in=60).replace("/swap/mine?", "/swap/yours?")
    assert requests.get(url, timeout=10).status_code == 403


def test_a_download_stream_broken_midway_raises_storage_error() -> None:
    class BrokenConnection(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise ProtocolError("connection reset by peer")

    body = StreamingBody(BrokenConnection(), content_length=10)
    with io.BufferedReader(_Body(body, "k")) as stream, pytest.raises(StorageError):
        stream.read()
