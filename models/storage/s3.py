"""S3-compatible storage through boto3; every boto error becomes StorageError or ObjectMissing."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

import boto3
import botocore.auth
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.settings import Settings
from models.errors import ObjectMissing, StorageError
from models.storage.base import ObjectInfo
from models.storage.keys import validate_key
from models.storage.s3_multipart import S3Multipart

BOTO_ERRORS = (BotoCoreError, ClientError, Boto3Error)
MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# S3's smallest part: with two parts in memory a non-seekable upload stays near 16 MiB of RAM;
# 10,000 parts still allow ~48 GiB objects of unknown size.
PART_BYTES = 5 * 1024 * 1024
READ_BYTES = 1024 * 1024
# SigV4's longest presigned validity (X-Amz-Expires), seven days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# botocore dates a SigV4 signature by its own clock (`botocore.auth.get_current_datetime`) and takes no
# other moment (boto/botocore#2230). That clock is replaced, once, by one that answers the moment a
# presign asked for while it runs and the real time otherwise; a ContextVar holds the moment, so a
# request signing on another thread at the same time never sees it. (botocore-stubs omit that clock.)
_signing_moment: ContextVar[datetime | None] = ContextVar("s3_signing_moment", default=None)
_botocore_clock = botocore.auth.get_current_datetime  # type: ignore[attr-defined]


def _dated_clock(*args: Any, **kwargs: Any) -> datetime:
    moment = _signing_moment.get()
    return _botocore_clock(*args, **kwargs) if moment is None else moment


def _install_dated_clock() -> None:
    if botocore.auth.get_current_datetime is not _dated_clock:  # type: ignore[attr-defined]
        botocore.auth.get_current_datetime = _dated_clock  # type: ignore[attr-defined]


@contextmanager
def _signing_as_of(signed_at: int | None) -> Iterator[None]:
    """Presigns inside are dated `signed_at` (epoch seconds) instead of now."""
    if signed_at is None:
        yield
        return
    # botocore's clock answers naive UTC.
    token = _signing_moment.set(datetime.fromtimestamp(signed_at, UTC).replace(tzinfo=None))
    try:
        yield
    finally:
        _signing_moment.reset(token)


def _transfer_config() -> TransferConfig:
    config = TransferConfig(multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=3)
    # A non-seekable stream is buffered part by part; this caps how many parts sit in memory at once.
    config.max_in_memory_upload_chunks = 2
    return config


def _error_code(error: BaseException | None) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@contextmanager
def _translated(action: str, key: str = "") -> Iterator[None]:
    try:
        yield
    except BOTO_ERRORS as error:
        if _error_code(error) in MISSING_CODES:
            raise ObjectMissing(key) from error
        raise StorageError(f"s3 {action} failed for {key!r}: {type(error).__name__}: {error}") from error


class _Body(io.RawIOBase):
    """A readable, closable view of a StreamingBody whose read errors are storage errors."""

    def __init__(self, body: Any, key: str) -> None:
        self._body, self._key = body, key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _translated("read", self._key):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class _FullReads(io.RawIOBase):
    """Reads that return `n` bytes unless the stream ends: s3transfer takes a short read for the end."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self._stream.read()
        # BytesIO.getvalue() hands back its buffer without a copy: one part is held once.
        part = io.BytesIO()
        while (wanted := size - part.tell()) and (chunk := self._stream.read(min(wanted, READ_BYTES))):
            part.write(chunk)
        return part.getvalue()


def _file_path(stream: BinaryIO) -> str | None:
    """A path that reopens the regular file behind `stream` when it is read from its start (Linux)."""
    try:
        if stream.tell() != 0:
            return None
        # fileno() moves a SpooledTemporaryFile still in memory to disk.
        path = f"/proc/self/fd/{stream.fileno()}"
    except (AttributeError, OSError, ValueError):
        return None
    return path if os.path.isfile(path) else None


def bucket_cors(origins: Sequence[str]) -> dict[str, Any]:
    """The bucket CORS rule browsers need for direct uploads: PUT parts, read their ETag, GET originals."""
    rule = {
        "AllowedOrigins": list(origins),
        "AllowedMethods": ["GET", "HEAD", "PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }
    return {"CORSRules": [rule]}


class S3Storage(S3Multipart):
    """Objects in one bucket of an S3-compatible store (path-style, SigV4); `url()` is a presigned GET."""

    def __init__(self, client: Any, bucket: str, region: str = "us-east-1") -> None:
        self.client, self.bucket, self.region = client, bucket, region
        self._transfer = _transfer_config()
        _install_dated_clock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        secret = settings.aws_secret_access_key
        config = Config(
            signature_version="s3v4",
            region_name=settings.s3_region,
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=20,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(client, settings.s3_bucket, settings.s3_region)

    def spool(self) -> BinaryIO:
        # On disk from the first byte: `put` hands s3transfer its path (see _file_path), never a stream.
        return cast(BinaryIO, tempfile.TemporaryFile(prefix="iskra-upload-"))

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> ObjectInfo:
        extra = {"ContentType": content_type}
        with _translated("put", validate_key(key)):
            if (path := _file_path(stream)) is not None:
                # Given a path, s3transfer opens the file once per part and sends it as it reads: a few
                # MiB in flight. Given a stream, it must copy each part into memory (all of a 25 MiB file).
                self.client.upload_file(path, self.bucket, key, ExtraArgs=extra, Config=self._transfer)
            else:
                self.client.upload_fileobj(
                    _FullReads(stream), self.bucket, key, ExtraArgs=extra, Config=self._transfer
                )
        if (info := self.head(key)) is None:
            raise StorageError(f"s3 object missing right after put: {key!r}")
        return info

    def open(self, key: str) -> BinaryIO:
        with _translated("get", validate_key(key)):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return io.BufferedReader(_Body(body, key), buffer_size=1024 * 1024)

    def download_to(self, key: str, path: str) -> None:
        with _translated("download", validate_key(key)):
            self.client.download_file(self.bucket, key, path, Config=self._transfer)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            with _translated("head", validate_key(key)):
                found = self.client.head_object(Bucket=self.bucket, Key=key)
        except ObjectMissing:
            return None
        return ObjectInfo(
            key=key,
            size=found["ContentLength"],
            etag=found["ETag"].strip('"'),
            content_type=found.get("ContentType"),
            last_modified=found["LastModified"],
        )

    def delete(self, key: str) -> None:
        with _translated("delete", validate_key(key)):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def url(
        self, key: str, *, expires_in: int, content_type: str | None = None, signed_at: int | None = None
    ) -> str:
        params = {"Bucket": self.bucket, "Key": validate_key(key)}
        if content_type:
            params["ResponseContentType"] = content_type
        expires_in = min(expires_in, MAX_PRESIGN_SECONDS)
        with _translated("presign", key), _signing_as_of(signed_at):
            return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Listed objects carry no content type (S3 listings do not return it); head() one for that."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with _translated("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    etag = item["ETag"].strip('"')
                    yield ObjectInfo(item["Key"], item["Size"], etag, None, item["LastModified"])

    def _bucket_exists(self) -> bool:
        try:
            with _translated("head bucket", self.bucket):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectMissing:
            return False
        return True

    def check(self) -> None:
        if not self._bucket_exists():
            raise StorageError(f"bucket {self.bucket!r} does not exist")

    def ensure_bucket(self, cors_origins: Sequence[str] = ()) -> None:
        """Create the bucket if missing (tests, operators); let `cors_origins` PUT parts (docs/api.md)."""
        if not self._bucket_exists():
            self._create_bucket()
        if cors_origins:
            with _translated("put bucket cors", self.bucket):
                self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration=bucket_cors(cors_origins))

    def _create_bucket(self) -> None:
        options: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            with _translated("create bucket", self.bucket):
                self.client.create_bucket(**options)
        except StorageError as error:
            if _error_code(error.__cause__) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
