"""The Storage contract, run against both real backends (local disk and SeaweedFS S3)."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest

from models.errors import ObjectMissing
from models.storage import Storage
from tests.models.storage.conftest import GeneratedStream

MIB = 1024 * 1024


def _put(storage: Storage, key: str, data: bytes, content_type: str = "application/octet-stream"):
    return storage.put(key, io.BytesIO(data), content_type=content_type)


def test_put_then_open_returns_the_same_bytes(storage: Storage, namespace: str) -> None:
    data = bytes(range(256)) * 100
    _put(storage, f"{namespace}a.bin", data)
    with storage.open(f"{namespace}a.bin") as stream:
        assert stream.read() == data


def test_put_reports_and_head_returns_size_etag_and_content_type(storage: Storage, namespace: str) -> None:
    data = b"\x89PNG not really"
    written = _put(storage, f"{namespace}image.png", data, "image/png")
    found = storage.head(f"{namespace}image.png")
    assert found is not None
    assert (found.key, found.size, found.content_type) == (f"{namespace}image.png", len(data), "image/png")
    assert found.etag and found.etag == written.etag
    assert found.last_modified.tzinfo is not None


def test_a_spool_is_put_whole_and_its_etag_changes_with_its_bytes(storage: Storage, namespace: str) -> None:
    data = bytes(range(256)) * 5000
    with storage.spool() as spool:
        spool.write(data)
        spool.seek(0)
        first = storage.put(f"{namespace}spooled.bin", spool, content_type="image/jpeg")
    second = _put(storage, f"{namespace}spooled.bin", data[:-1])
    with storage.open(f"{namespace}spooled.bin") as stream:
        assert stream.read() == data[:-1]
    assert (first.size, second.size) == (len(data), len(data) - 1)
    assert first.etag != second.etag


def test_put_overwrites_an_existing_object(storage: Storage, namespace: str) -> None:
    _put(storage, f"{namespace}x", b"first", "text/plain")
    _put(storage, f"{namespace}x", b"second!", "application/json")
    with storage.open(f"{namespace}x") as stream:
        assert stream.read() == b"second!"
    assert storage.head(f"{namespace}x").content_type == "application/json"


def test_a_30_mib_stream_round_trips_byte_exact_without_being_held_in_memory(
    storage: Storage, namespace: str, tmp_path: Path
) -> None:
    source = GeneratedStream(30 * MIB)
    tracemalloc.start()
    try:
        info = storage.put(f"{namespace}big.mp4", source, content_type="video/mp4")
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read_back = hashlib.sha256()
        with storage.open(f"{namespace}big.mp4") as stream:
            while chunk := stream.read(MIB):
                read_back.update(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == 30 * MIB
    assert read_back.hexdigest() == source.sha256.hexdigest()
    # Holding the whole stream would take at least 30 MiB; a few parts in flight is what streaming costs.
    assert upload_peak < 24 * MIB
    assert download_peak < 8 * MIB
    storage.download_to(f"{namespace}big.mp4", str(tmp_path / "copy.mp4"))
    copied = hashlib.sha256((tmp_path / "copy.mp4").read_bytes())
    assert copied.hexdigest() == source.sha256.hexdigest()


def test_a_30_mib_temp_file_is_stored_whole_with_only_a_few_mib_in_memory(
    storage: Storage, namespace: str
) -> None:
    # Uploads and imports hand storage their spool: a temp file already on disk, read from its start.
    source = GeneratedStream(30 * MIB, seed="spool")
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(source, spool, MIB)
        spool.seek(0)
        tracemalloc.start()
        try:
            info = storage.put(f"{namespace}spooled.mp4", spool, content_type="video/mp4")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    read_back = hashlib.sha256()
    with storage.open(f"{namespace}spooled.mp4") as stream:
        while chunk := stream.read(MIB):
            read_back.update(chunk)
    assert (info.size, read_back.hexdigest()) == (30 * MIB, source.sha256.hexdigest())
    assert peak < 8 * MIB


def test_a_file_read_from_the_middle_stores_only_what_is_left(storage: Storage, namespace: str) -> None:
    with tempfile.TemporaryFile() as spool:
        spool.write(b"skipped|kept")
        spool.seek(len(b"skipped|"))
        storage.put(f"{namespace}tail", spool, content_type="text/plain")
    with storage.open(f"{namespace}tail") as stream:
        assert stream.read() == b"kept"


def test_download_to_copies_the_object_to_a_file(storage: Storage, namespace: str, tmp_path: Path) -> None:
    _put(storage, f"{namespace}clip.mov", b"movie bytes")
    storage.download_to(f"{namespace}clip.mov", str(tmp_path / "clip.mov"))
    assert (tmp_path / "clip.mov").read_bytes() == b"movie bytes"


def test_delete_removes_the_object_and_is_idempotent(storage: Storage, namespace: str) -> None:
    _put(storage, f"{namespace}gone", b"bye")
    storage.delete(f"{namespace}gone")
    storage.delete(f"{namespace}gone")
    assert storage.head(f"{namespace}gone") is None
    assert list(storage.iter_objects(namespace)) == []


def test_a_missing_object_has_no_head_and_cannot_be_opened_or_downloaded(
    storage: Storage, namespace: str, tmp_path: Path
) -> None:
    assert storage.head(f"{namespace}nothing") is None
    with pytest.raises(ObjectMissing):
        storage.open(f"{namespace}nothing")
    with pytest.raises(ObjectMissing):
        storage.download_to(f"{namespace}nothing", str(tmp_path / "out"))


def test_iter_objects_lists_exactly_the_keys_under_a_prefix(storage: Storage, namespace: str) -> None:
    for key in ("a/1.webp", "a/2/deep.webp", "ab/1.webp", "b/1.webp"):
        _put(storage, f"{namespace}{key}", key.encode())
    listed = {info.key: info.size for info in storage.iter_objects(f"{namespace}a/")}
    assert listed == {f"{namespace}a/1.webp": 8, f"{namespace}a/2/deep.webp": 13}
    partial = {info.key for info in storage.iter_objects(f"{namespace}a")}
    assert partial == {f"{namespace}a/1.webp", f"{namespace}a/2/deep.webp", f"{namespace}ab/1.webp"}


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "a/../../etc/passwd",
        "/absolute",
        "a//b",
        "a b",
        "naïve.jpg",
        "a/.meta/x",
        "",
        "a/",
        "x\n",
    ],
)
def test_keys_with_unsafe_characters_are_refused_everywhere(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.put(key, io.BytesIO(b"x"), content_type="text/plain")
    for operation in (storage.head, storage.open, storage.delete):
        with pytest.raises(ValueError, match="invalid storage key"):
            operation(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.url(key, expires_in=60)


def test_a_signed_url_serves_the_bytes_with_the_asked_content_type(
    storage: Storage, namespace: str, fetch
) -> None:
    _put(storage, f"{namespace}doc", b"%PDF-1.7 body", "application/octet-stream")
    status, headers, body = fetch(
        storage.url(f"{namespace}doc", expires_in=60, content_type="application/pdf")
    )
    assert (status, body) == (200, b"%PDF-1.7 body")
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Length"] == "13"


def test_a_signed_url_defaults_to_the_stored_content_type(storage: Storage, namespace: str, fetch) -> None:
    _put(storage, f"{namespace}pic", b"RIFF....WEBP", "image/webp")
    status, headers, _ = fetch(storage.url(f"{namespace}pic", expires_in=60))
    assert (status, headers["Content-Type"]) == (200, "image/webp")


def test_a_tampered_signed_url_is_refused(storage: Storage, namespace: str, fetch) -> None:
    _put(storage, f"{namespace}secret", b"private")
    url = storage.url(f"{namespace}secret", expires_in=60)
    # Not the last character: in base64 its low bits may be padding that decoding ignores.
    at = len(url) - 5
    tampered = url[:at] + ("0" if url[at] != "0" else "1") + url[at + 1 :]
    status, _, body = fetch(tampered)
    assert status == 403
    assert b"private" not in body


def test_an_expired_signed_url_is_refused(storage: Storage, namespace: str, fetch) -> None:
    _put(storage, f"{namespace}old", b"stale")
    url = storage.url(f"{namespace}old", expires_in=1)
    time.sleep(2.2)
    status, _, body = fetch(url)
    assert status == 403
    assert body != b"stale"


def test_a_url_signed_as_of_one_moment_is_the_same_url_later_and_still_serves(
    storage: Storage, namespace: str, fetch
) -> None:
    _put(storage, f"{namespace}stable", b"same bytes", "image/webp")
    # The start of the current clock hour, as the API dates its links.
    signed_at = int(time.time()) // 3600 * 3600
    first = storage.url(f"{namespace}stable", expires_in=7200, signed_at=signed_at, content_type="image/webp")
    time.sleep(1.1)  # a signature dated by the clock would now carry another second
    again = storage.url(f"{namespace}stable", expires_in=7200, signed_at=signed_at, content_type="image/webp")
    an_hour_earlier = storage.url(
        f"{namespace}stable", expires_in=7200, signed_at=signed_at - 3600, content_type="image/webp"
    )

    assert first == again
    assert an_hour_earlier != first
    assert fetch(first)[::2] == (200, b"same bytes")


def test_a_url_dated_in_the_past_expires_counted_from_that_moment(
    storage: Storage, namespace: str, fetch
) -> None:
    _put(storage, f"{namespace}dated", b"old news")
    url = storage.url(f"{namespace}dated", expires_in=60, signed_at=int(time.time()) - 120)
    status, _, body = fetch(url)
    assert status == 403
    assert body != b"old news"


def test_check_passes_on_a_usable_backend(storage: Storage) -> None:
    storage.check()


class ClientGone(Exception):
    """The uploader vanished mid-stream."""


class FailingStream(GeneratedStream):
    def readinto(self, buffer) -> int:
        if self.remaining < 4 * MIB:
            raise ClientGone()
        return super().readinto(buffer)


def test_a_stream_that_fails_midway_leaves_no_object_behind(storage: Storage, namespace: str) -> None:
    with pytest.raises(ClientGone):
        storage.put(f"{namespace}partial", FailingStream(12 * MIB), content_type="video/mp4")
    assert storage.head(f"{namespace}partial") is None
    assert list(storage.iter_objects(namespace)) == []
