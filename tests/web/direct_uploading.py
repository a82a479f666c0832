"""A Companion S3 multipart client in Python, as `@uppy/aws-s3` drives the routes, for route-level tests."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

MIB = 1024 * 1024


class DirectClient:
    """Calls `{ep}/s3/multipart…` through a Flask test client; PUTs parts where the signed URL points."""

    def __init__(self, client, endpoint: str = "/v1/uploads", headers: dict[str, str] | None = None) -> None:
        self.client, self.endpoint, self.headers = client, endpoint.rstrip("/"), headers or {}

    def create(self, filename="photo.jpg", file_type="image/jpeg", **metadata):
        body = {"filename": filename, "type": file_type, "metadata": {"name": filename, **metadata}}
        return self.client.post(f"{self.endpoint}/s3/multipart", json=body, headers=self.headers)

    def sign(self, upload_id: str, key: str, number: int):
        url = f"{self.endpoint}/s3/multipart/{upload_id}/{number}"
        return self.client.get(url, query_string={"key": key}, headers=self.headers)

    def put_part(self, url: str, data: bytes) -> tuple[int, str]:
        """PUT one part to its signed URL: the API itself (local disk) or the S3 server; (status, ETag)."""
        parsed = urlsplit(url)
        if parsed.path.startswith("/files/parts/"):
            response = self.client.put(parsed.path, data=data)
            return response.status_code, response.headers.get("ETag", "")
        response = requests.put(url, data=data, timeout=30)
        return response.status_code, response.headers.get("ETag", "")

    def list_parts(self, upload_id: str, key: str):
        url = f"{self.endpoint}/s3/multipart/{upload_id}"
        return self.client.get(url, query_string={"key": key}, headers=self.headers)

    def complete(self, upload_id: str, key: str, parts: list[dict], headers: dict[str, str] | None = None):
        url = f"{self.endpoint}/s3/multipart/{upload_id}/complete"
        return self.client.post(
            url, query_string={"key": key}, json={"parts": parts}, headers={**self.headers, **(headers or {})}
        )

    def abort(self, upload_id: str, key: str):
        url = f"{self.endpoint}/s3/multipart/{upload_id}"
        return self.client.delete(url, query_string={"key": key}, headers=self.headers)

    def upload_parts(self, upload_id: str, key: str, content: bytes, part_bytes: int = 5 * MIB) -> list[dict]:
        """Sign and PUT every part of `content`; the `parts` complete takes (ETags as sent back)."""
        parts = []
        for index, start in enumerate(range(0, len(content), part_bytes)):
            signed = self.sign(upload_id, key, index + 1)
            assert signed.status_code == 200, signed.data
            status, etag = self.put_part(signed.json["url"], content[start : start + part_bytes])
            assert status == 200 and etag, status
            parts.append({"PartNumber": index + 1, "ETag": etag})
        return parts

    def upload(self, content: bytes, filename="photo.jpg", file_type="image/jpeg", **metadata):
        """The whole flow: create, PUT the parts, complete; the complete response."""
        created = self.create(filename, file_type, **metadata)
        assert created.status_code == 200, created.data
        upload_id, key = created.json["uploadId"], created.json["key"]
        parts = self.upload_parts(upload_id, key, content)
        return self.complete(upload_id, key, parts)
