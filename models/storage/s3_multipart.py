"""S3's multipart API behind MultipartStorage; boto errors become UploadMissing, PartMismatch or others."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from models.errors import StorageError
from models.storage.base import ObjectInfo
from models.storage.keys import validate_key
from models.storage.multipart import IncompleteUpload, PartMismatch, UploadedPart, UploadMissing, bare_etag

UPLOAD_MISSING_CODES = {"NoSuchUpload", "404", "NoSuchKey"}
PART_MISMATCH_CODES = {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}


@contextmanager
def _multipart_errors(action: str, key: str) -> Iterator[None]:
    from models.storage.s3 import BOTO_ERRORS, _error_code

    try:
        yield
    except BOTO_ERRORS as error:
        code = _error_code(error)
        if code in UPLOAD_MISSING_CODES:
            raise UploadMissing(key) from error
        if code in PART_MISMATCH_CODES:
            raise PartMismatch(f"{code}: {error}") from error
        raise StorageError(f"s3 {action} failed for {key!r}: {type(error).__name__}: {error}") from error


class S3Multipart:
    """Mixed into S3Storage: `client` and `bucket` are its."""

    client: Any
    bucket: str

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def create_multipart(self, key: str, *, content_type: str) -> str:
        with _multipart_errors("create multipart", validate_key(key)):
            made = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)
        return made["UploadId"]

    def part_url(self, key: str, upload_id: str, part_number: int, *, expires_in: int, max_bytes: int) -> str:
        # S3 cannot bound a presigned PUT's size without signing its Content-Length, which a browser
        # sending a Blob slice never names to us: completion checks the total instead.
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": validate_key(key), "UploadId": upload_id}
        params["PartNumber"] = part_number
        with _multipart_errors("presign part", key):
            return self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in)

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        parts: list[UploadedPart] = []
        marker = 0
        with _multipart_errors("list parts", validate_key(key)):
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                parts += [
                    UploadedPart(part["PartNumber"], part["Size"], bare_etag(part["ETag"]))
                    for part in page.get("Parts", [])
                ]
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])

    def complete_multipart(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> ObjectInfo:
        listed = [{"PartNumber": number, "ETag": f'"{bare_etag(etag)}"'} for number, etag in parts]
        with _multipart_errors("complete multipart", validate_key(key)):
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        if (info := self.head(key)) is None:
            raise StorageError(f"s3 object missing right after completing {key!r}")
        return info

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            with _multipart_errors("abort multipart", validate_key(key)):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except UploadMissing:
            pass

    def incomplete_uploads(self, started_before: datetime) -> Iterator[IncompleteUpload]:
        pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket)
        with _multipart_errors("list multipart uploads", self.bucket):
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < started_before:
                        yield IncompleteUpload(upload["Key"], upload["UploadId"], upload["Initiated"])

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        from models.storage.s3 import _translated

        if length <= 0:
            return b""
        with _translated("ranged get", validate_key(key)):
            found = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}"
            )
            return found["Body"].read()
