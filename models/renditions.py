"""The renditions an asset can have, named once: the columns each fills and the objects an asset owns."""

from __future__ import annotations

from sqlalchemy.orm import InstrumentedAttribute

from models.tables import Asset

# The key columns each rendition fills. A video's poster is its thumbnail too, so every ready asset has a
# thumbnail and readers (listings, canvas thumbnails) use `thumbnail_key` alone.
RENDITION_COLUMNS: dict[str, tuple[str, ...]] = {
    "thumbnail": ("thumbnail_key",),
    "preview": ("preview_key",),
    "poster": ("poster_key", "thumbnail_key"),
    # Full size, for originals a browser cannot show (HEIC, AVIF, TIFF); WebP, or JPEG past WebP's limits.
    "display": ("display_key",),
}
# Every column that names a stored object of an asset: its original, then each rendition's.
KEY_COLUMNS: tuple[InstrumentedAttribute[str | None], ...] = (
    Asset.storage_key,
    *(getattr(Asset, column) for column in dict.fromkeys(c for cs in RENDITION_COLUMNS.values() for c in cs)),
)


def rendition_columns(keys: dict[str, str]) -> dict[str, str]:
    """Column values for renditions stored under `keys` (rendition name → storage key)."""
    return {column: key for name, key in keys.items() for column in RENDITION_COLUMNS[name]}


def rendition_key_of(asset: Asset, name: str) -> str | None:
    """The storage key of one rendition of `asset`, if it has one."""
    return getattr(asset, RENDITION_COLUMNS[name][0])


def object_keys(asset: Asset) -> list[str]:
    """Every storage object the asset owns: its original and each rendition, once each."""
    return list(dict.fromkeys(key for column in KEY_COLUMNS if (key := getattr(asset, column.key))))
