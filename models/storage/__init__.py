"""Storage: one small interface (put/open/head/delete/url/iter) with local-disk and S3 backends."""

from __future__ import annotations

from core.settings import Settings
from models.storage.base import ObjectInfo, Storage

__all__ = ["ObjectInfo", "Storage", "make_storage"]


def make_storage(settings: Settings) -> Storage:
    """The configured backend; it connects lazily."""
    if settings.storage_backend == "s3":
        from models.storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    from models.storage.local import LocalStorage

    return LocalStorage.from_settings(settings)
