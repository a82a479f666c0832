"""Local-disk storage: atomic writes, content types from key extensions (a hidden sidecar where the extension
names none), downloads through HMAC-signed API paths."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO, cast

from core.settings import DEV_PLACEHOLDER, Settings
from models.errors import ObjectMissing, StorageError
from models.storage.base import ObjectInfo
from models.storage.keys import implied_content_type, validate_key
from models.storage.local_multipart import LocalMultipart, PartSigner
from models.storage.signing import DownloadSigner

CHUNK_BYTES = 1024 * 1024
# Keys never have dot-led segments, so these names cannot collide with objects.
META_DIR = ".meta"
TEMP_PREFIX = ".tmp-"
DOWNLOAD_PATH = "/files/"


class UnsafeSigningSecret(RuntimeError):
    """The local backend was asked to sign links without a secret of the deployment's own."""


class LocalStorage(LocalMultipart):
    """Objects as files under `root`; `url()` is a relative API path (`/files/<token>`) the API serves."""

    def __init__(self, root: Path, signer: DownloadSigner) -> None:
        self.root = Path(root).resolve()
        self.signer = signer
        self.part_signer = PartSigner(signer.secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStorage:
        secret = settings.signing_secret.get_secret_value()
        # Links signed with the public placeholder could be forged by anyone. A random secret per process
        # is no way out either: every API process must verify what any other one signed.
        if secret == DEV_PLACEHOLDER or not secret:
            raise UnsafeSigningSecret(
                "SIGNING_SECRET is not set, and local-storage download links would be signed with a public "
                "placeholder. Set it to the same random value in every API and worker process "
                "(`python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or start the local "
                "stack with `./dev up`, which generates one into .data/local.env."
            )
        return cls(settings.local_storage_root, DownloadSigner(secret))

    def path(self, key: str) -> Path:
        """The file that holds `key` (which may not exist)."""
        return self.root / validate_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / f"{validate_key(key)}.json"

    def spool(self) -> BinaryIO:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return _unnamed_file(self.root)
        except OSError as error:
            raise StorageError(f"local spool failed: {error}") from error

    def put(self, key: str, stream: BinaryIO, *, content_type: str) -> ObjectInfo:
        path, meta_path = self.path(key), self._meta_path(key)
        staged: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not _synced_if_unnamed(stream):
                staged = _stage(path.parent, _chunks(stream))
            # Metadata lands first: once the object is visible, its metadata is already there. A key whose
            # extension says its type (every rendition, most originals) needs none: one file and one fsync.
            if content_type == implied_content_type(key):
                meta_path.unlink(missing_ok=True)
            else:
                meta_path.parent.mkdir(parents=True, exist_ok=True)
                meta = json.dumps({"content_type": content_type}).encode()
                os.replace(_stage(meta_path.parent, iter([meta])), meta_path)
            if staged is None and not _link(stream, path):
                staged = _stage(path.parent, _chunks(stream))  # a name already taken: replaced by a copy
            if staged is not None:
                os.replace(staged, path)
                staged = None
            stat = path.stat()
        except OSError as error:
            raise StorageError(f"local put failed: {error}") from error
        finally:
            if staged is not None:
                staged.unlink(missing_ok=True)
        return ObjectInfo(key, stat.st_size, _etag(stat), content_type, _modified(stat))

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError as error:
            raise ObjectMissing(key) from error
        except OSError as error:
            raise StorageError(f"local open failed: {error}") from error

    def download_to(self, key: str, path: str) -> None:
        try:
            shutil.copyfile(self.path(key), path)
        except FileNotFoundError as error:
            if not self.path(key).exists():
                raise ObjectMissing(key) from error
            raise StorageError(f"local download failed: {error}") from error
        except OSError as error:
            raise StorageError(f"local download failed: {error}") from error

    def head(self, key: str) -> ObjectInfo | None:
        try:
            stat = self.path(key).lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:
            raise StorageError(f"local head failed: {error}") from error
        if not S_ISREG(stat.st_mode):
            # Only regular files are objects: a directory (another key's prefix) or a symlink planted
            # under the root is never listed or served, so no key reaches a file outside the root.
            return None
        meta = self._read_meta(key)
        # Objects put before ETags were made from mtime and size keep the MD5 their sidecar recorded.
        etag = meta.get("etag") or _etag(stat)
        content_type = meta.get("content_type") or implied_content_type(key)
        return ObjectInfo(key, stat.st_size, etag, content_type, _modified(stat))

    def _read_meta(self, key: str) -> dict:
        try:
            return json.loads(self._meta_path(key).read_bytes())
        except (OSError, ValueError):
            return {}

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink(missing_ok=True)
            self._meta_path(key).unlink(missing_ok=True)
        except OSError as error:
            raise StorageError(f"local delete failed: {error}") from error

    def url(
        self, key: str, *, expires_in: int, content_type: str | None = None, signed_at: int | None = None
    ) -> str:
        token = self.signer.sign(key, expires_in=expires_in, content_type=content_type, signed_at=signed_at)
        return DOWNLOAD_PATH + token

    def iter_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        directory = self.root / validate_key(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        for current, dirs, files in os.walk(directory):
            dirs[:] = sorted(name for name in dirs if not name.startswith("."))
            for name in sorted(files):
                key = Path(current, name).relative_to(self.root).as_posix()
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                if (info := self.head(key)) is not None:
                    yield info

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root, prefix=TEMP_PREFIX) as probe:
                probe.write(b"ok")
        except OSError as error:
            raise StorageError(f"local storage root is not writable: {error}") from error


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def _etag(stat: os.stat_result) -> str:
    """The object's version as its file's mtime and size (as nginx tags files): no pass over its bytes."""
    return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"


def _modified(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)


def _unnamed_file(directory: Path) -> BinaryIO:
    """A file in `directory`'s file system that has no name until `_link` gives it one: nothing is
    left behind by a crash. A plain temp file where the file system has no O_TMPFILE (it is then copied)."""
    try:
        # Without O_EXCL (which tempfile.TemporaryFile sets): an O_EXCL unnamed file can never be linked.
        fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except (AttributeError, OSError):
        return cast(BinaryIO, tempfile.TemporaryFile(dir=directory, prefix=TEMP_PREFIX))
    return open(fd, "w+b")  # the caller closes it


def _synced_if_unnamed(stream: BinaryIO) -> bool:
    """True, once its bytes are on disk, if `stream` is an unnamed file (a `spool()`) for `_link` to name."""
    try:
        fd = stream.fileno()
        if os.fstat(fd).st_nlink != 0:
            return False
        stream.flush()
        os.fsync(fd)
    except (OSError, AttributeError, ValueError):
        return False
    return True


def _link(stream: BinaryIO, path: Path) -> bool:
    """Give the unnamed file behind `stream` the name `path`; False where it cannot, and it is copied."""
    # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/<fd> names an O_TMPFILE file (os.link only uses linkat
    # when given a directory fd). Any other unnamed file (ENOENT), another file system (EXDEV) or an
    # existing name (EEXIST) is refused.
    fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(str(stream.fileno()), path, src_dir_fd=fds, follow_symlinks=True)
    except OSError:
        return False
    finally:
        os.close(fds)
    return True


def _stage(directory: Path, chunks: Iterator[bytes]) -> Path:
    """Write `chunks` to a fsynced temp file in `directory`; return its path."""
    handle, name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(handle, "wb") as temp:
            for chunk in chunks:
                temp.write(chunk)
            temp.flush()
            os.fsync(temp.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)
