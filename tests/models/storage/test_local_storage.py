"""LocalStorage specifics: atomic files, hidden bookkeeping, readiness."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from core.settings import Settings
from models.errors import StorageError
from models.storage import make_storage
from models.storage.local import LocalStorage
from models.storage.signing import DownloadSigner


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", DownloadSigner("secret-for-local-storage-tests"))


def test_make_storage_builds_the_local_backend_under_the_configured_root(settings: Settings) -> None:
    storage = make_storage(settings)
    assert isinstance(storage, LocalStorage)
    assert storage.root == settings.local_storage_root.resolve()


def _files(local: LocalStorage) -> list[str]:
    return sorted(p.relative_to(local.root).as_posix() for p in local.root.rglob("*") if p.is_file())


def test_a_type_the_extension_says_needs_no_metadata_file(local: LocalStorage) -> None:
    local.put("a/b.webp", io.BytesIO(b"x"), content_type="image/webp")
    assert _files(local) == ["a/b.webp"]
    assert local.head("a/b.webp").content_type == "image/webp"


def test_a_type_the_extension_does_not_say_is_kept_in_hidden_metadata(local: LocalStorage) -> None:
    local.put("a/b.bin", io.BytesIO(b"x"), content_type="image/heic")
    local.put("a/c.jpg", io.BytesIO(b"x"), content_type="image/png")
    assert _files(local) == [".meta/a/b.bin.json", ".meta/a/c.jpg.json", "a/b.bin", "a/c.jpg"]
    types = [local.head(key).content_type for key in ("a/b.bin", "a/c.jpg")]
    assert types == ["image/heic", "image/png"]


def test_a_put_the_extension_describes_drops_an_earlier_put_s_metadata(local: LocalStorage) -> None:
    local.put("a/c.jpg", io.BytesIO(b"x"), content_type="image/png")
    local.put("a/c.jpg", io.BytesIO(b"y"), content_type="image/jpeg")
    assert _files(local) == ["a/c.jpg"]
    assert local.head("a/c.jpg").content_type == "image/jpeg"


def test_a_spool_is_linked_into_place_without_a_copy(local: LocalStorage) -> None:
    with local.spool() as spool:
        spool.write(b"upload bytes")
        inode = os.fstat(spool.fileno()).st_ino
        local.put("a/spooled.jpg", spool, content_type="image/jpeg")
    assert local.path("a/spooled.jpg").stat().st_ino == inode
    assert local.path("a/spooled.jpg").read_bytes() == b"upload bytes"
    assert _files(local) == ["a/spooled.jpg"]


def test_a_spool_never_put_leaves_nothing_behind(local: LocalStorage) -> None:
    with local.spool() as spool:
        spool.write(b"refused upload")
    assert [p for p in local.root.rglob("*") if p.is_file()] == []


def test_a_named_file_is_copied_not_linked(local: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "elsewhere.bin"
    source.write_bytes(b"someone else's file")
    with source.open("rb") as stream:
        local.put("a/copy.bin", stream, content_type="application/octet-stream")
    assert local.path("a/copy.bin").stat().st_ino != source.stat().st_ino
    assert source.stat().st_nlink == 1


def test_delete_removes_the_metadata_too(local: LocalStorage) -> None:
    local.put("a/b.bin", io.BytesIO(b"x"), content_type="image/heic")
    local.delete("a/b.bin")
    assert [p for p in local.root.rglob("*") if p.is_file()] == []


def test_an_object_without_metadata_still_has_a_head(local: LocalStorage) -> None:
    local.put("a/b", io.BytesIO(b"xyz"), content_type="text/plain")
    (local.root / ".meta/a/b.json").unlink()
    info = local.head("a/b")
    assert (info.size, info.content_type) == (3, None)
    assert info.etag


def test_iter_objects_skips_temp_files(local: LocalStorage) -> None:
    local.put("a/b", io.BytesIO(b"xyz"), content_type="text/plain")
    (local.root / "a/.tmp-leftover").write_bytes(b"half")
    assert [info.key for info in local.iter_objects("")] == ["a/b"]


def test_url_is_a_relative_api_path_carrying_a_signed_token(local: LocalStorage) -> None:
    url = local.url("a/b", expires_in=60, content_type="image/png")
    assert url.startswith("/files/")
    grant = local.signer.verify(url.removeprefix("/files/"))
    assert (grant.key, grant.content_type) == ("a/b", "image/png")


def test_check_fails_with_storage_error_when_the_root_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "media").write_text("a file, not a folder")
    storage = LocalStorage(tmp_path / "media", DownloadSigner("secret-for-local-storage-tests"))
    with pytest.raises(StorageError, match="not writable"):
        storage.check()
    with pytest.raises(StorageError):
        storage.put("a/b", io.BytesIO(b"x"), content_type="text/plain")


def test_a_failed_put_leaves_no_temp_file(local: LocalStorage) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise ConnectionResetError("client went away")

    with pytest.raises(StorageError):
        local.put("a/b", Broken(), content_type="text/plain")
    assert [p for p in local.root.rglob("*") if p.is_file()] == []


def test_only_regular_files_are_objects_not_symlinks_or_directories(
    local: LocalStorage, tmp_path: Path
) -> None:
    local.put("a/b.webp", io.BytesIO(b"x"), content_type="image/webp")
    (tmp_path / "secret").write_bytes(b"outside")
    local.path("a/link.webp").symlink_to(tmp_path / "secret")

    assert local.head("a/link.webp") is None
    assert local.head("a") is None
    assert local.head("a/b.webp/c") is None
    assert [info.key for info in local.iter_objects("a/")] == ["a/b.webp"]
