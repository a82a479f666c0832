"""Object keys built only from server-made ids and hashes, never from user input verbatim."""

from __future__ import annotations

import hashlib
import re
import uuid

ORIGINALS_PREFIX = "originals/"
RENDITIONS_PREFIX = "renditions/"
PROJECTS_PREFIX = "projects/"

# File extensions of originals by sniffed type; keys carry them so downloads open in the right app. Every
# rendition is WebP. A type missing here (HEIC, AVIF) is stored under `.bin` with its type beside it.
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/mpeg": "mpg",
    "video/mp2t": "ts",
    "video/x-msvideo": "avi",
}
_TYPES = {extension: mime_type for mime_type, extension in EXTENSIONS.items()}

# A segment never starts with "." so keys cannot reach ".." or the local backend's ".meta"/".tmp-" files.
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_RENDITION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_VERSION = re.compile(r"[a-z0-9]{1,16}")


def validate_key(key: str) -> str:
    """`key` if it is a safe relative key ([A-Za-z0-9/._-], no empty or dot-led segment); else ValueError."""
    if not isinstance(key, str) or len(key) > 256 or not _KEY.fullmatch(key):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


def user_segment(user_id: str) -> str:
    """The user's key segment: a hash, so identity-provider ids never appear in keys."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:16]


def _uuid(value: uuid.UUID | str) -> str:
    return str(uuid.UUID(str(value)))


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}: {value!r}")
    return value


def extension_for(mime_type: str) -> str:
    return EXTENSIONS.get(mime_type, "bin")


def implied_content_type(key: str) -> str | None:
    """The content type `key`'s extension stands for (as `extension_for` made it), if any."""
    name = key.rsplit("/", 1)[-1]
    return _TYPES.get(name.rsplit(".", 1)[-1]) if "." in name else None


def original_key(user_id: str, asset_id: uuid.UUID | str, ext: str, *, version: str = "") -> str:
    """Where a byte-exact original lives: originals/<sha256(user)[:16]>/<asset>[-<version>].<ext>."""
    extension = _checked(_EXTENSION, ext.lower().lstrip("."), "extension")
    suffix = f"-{_checked(_VERSION, version, 'version')}" if version else ""
    return f"{ORIGINALS_PREFIX}{user_segment(user_id)}/{_uuid(asset_id)}{suffix}.{extension}"


def rendition_key(asset_id: uuid.UUID | str, name: str) -> str:
    """A derived WebP (thumbnail, preview, poster): renditions/<asset>/<name>.webp."""
    return f"{RENDITIONS_PREFIX}{_uuid(asset_id)}/{_checked(_RENDITION_NAME, name, 'rendition name')}.webp"


def project_thumbnail_key(project_id: uuid.UUID | str, revision: int) -> str:
    """A project's canvas thumbnail at one revision: projects/<project>/thumbnail-<revision>.webp."""
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise ValueError(f"invalid revision: {revision!r}")
    return f"{PROJECTS_PREFIX}{_uuid(project_id)}/thumbnail-{revision}.webp"


def user_originals_prefix(user_id: str) -> str:
    """The prefix holding every original of one user."""
    return f"{ORIGINALS_PREFIX}{user_segment(user_id)}/"


def originals_prefixes() -> tuple[str, ...]:
    """Prefixes that hold originals, for the abandoned-upload sweep."""
    return (ORIGINALS_PREFIX,)
