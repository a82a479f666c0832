"""Object keys are made from hashes and server ids, never from user input verbatim."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from models.storage import keys

ASSET = uuid.UUID("0b7f1f9e-3f2a-4d5e-9b8a-1c2d3e4f5a6b")


def test_an_original_key_hashes_the_user_id_and_uses_the_asset_uuid() -> None:
    key = keys.original_key("user_2abc/../Evil Name", ASSET, "JPG")
    digest = hashlib.sha256(b"user_2abc/../Evil Name").hexdigest()[:16]
    assert key == f"originals/{digest}/{ASSET}.jpg"
    assert "user_2abc" not in key
    assert keys.validate_key(key) == key


def test_an_original_key_lives_under_its_users_prefix_and_the_sweep_prefixes() -> None:
    key = keys.original_key("user_1", str(ASSET), ".png")
    assert key.startswith(keys.user_originals_prefix("user_1"))
    assert any(key.startswith(prefix) for prefix in keys.originals_prefixes())
    assert not key.startswith(keys.user_originals_prefix("user_2"))


def test_rendition_and_project_thumbnail_keys_are_webp_under_their_own_prefixes() -> None:
    assert keys.rendition_key(ASSET, "thumb_256") == f"renditions/{ASSET}/thumb_256.webp"
    assert keys.project_thumbnail_key(str(ASSET), 7) == f"projects/{ASSET}/thumbnail-7.webp"
    assert not keys.rendition_key(ASSET, "poster").startswith(keys.originals_prefixes())


def test_a_versioned_original_key_stays_named_after_its_asset_and_refuses_unsafe_versions() -> None:
    key = keys.original_key("user_1", ASSET, "jpg", version="1a2b3c4d")
    assert key == f"{keys.user_originals_prefix('user_1')}{ASSET}-1a2b3c4d.jpg"
    for version in ("../x", "A", "a-b", "x" * 17):
        with pytest.raises(ValueError, match="invalid version"):
            keys.original_key("user_1", ASSET, "jpg", version=version)


@pytest.mark.parametrize("asset_id", ["../../x", "not-a-uuid", "", "0b7f1f9e/../x"])
def test_an_asset_id_that_is_not_a_uuid_is_refused(asset_id: str) -> None:
    with pytest.raises(ValueError, match=r"UUID|hexadecimal"):
        keys.original_key("user_1", asset_id, "jpg")


@pytest.mark.parametrize("ext", ["", "jp g", "../x", "a" * 11, "jpg/x"])
def test_an_unsafe_extension_is_refused(ext: str) -> None:
    with pytest.raises(ValueError, match="invalid extension"):
        keys.original_key("user_1", ASSET, ext)


@pytest.mark.parametrize("name", ["", "../x", "Thumb", "a/b", "x" * 33])
def test_an_unsafe_rendition_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid rendition name"):
        keys.rendition_key(ASSET, name)


@pytest.mark.parametrize("revision", [-1, True, "3", 1.5])
def test_a_project_thumbnail_needs_a_whole_non_negative_revision(revision: object) -> None:
    with pytest.raises(ValueError, match="invalid revision"):
        keys.project_thumbnail_key(ASSET, revision)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["a", "a/b.c", "A-Z_0-9/x.y.z", "renditions/x/thumb_256.webp"])
def test_safe_keys_pass_validation_unchanged(key: str) -> None:
    assert keys.validate_key(key) == key


@pytest.mark.parametrize("key", ["..", "./a", "a/./b", ".hidden", "a\\b", "a?b", "a%2Fb", "x" * 257, None])
def test_unsafe_keys_fail_validation(key: object) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        keys.validate_key(key)  # type: ignore[arg-type]


def test_a_keys_extension_implies_the_type_it_was_made_from() -> None:
    asset_id = uuid.uuid4()
    for mime_type in keys.EXTENSIONS:
        key = keys.original_key("user_1", asset_id, keys.extension_for(mime_type))
        assert keys.implied_content_type(key) == mime_type
    assert keys.implied_content_type(keys.rendition_key(asset_id, "thumbnail")) == "image/webp"


@pytest.mark.parametrize("key", ["originals/x/a.bin", "a/b", "a.dir/b", "a/b.JPG"])
def test_a_key_without_a_known_extension_implies_no_type(key: str) -> None:
    assert keys.implied_content_type(key) is None
