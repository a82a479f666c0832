"""Local download tokens: signed with SIGNING_SECRET, bound to one key, expiring."""

from __future__ import annotations

import time

import pytest

from models.errors import InvalidDownloadLink
from models.storage.signing import DownloadSigner

SIGNER = DownloadSigner("a-secret-long-enough-for-the-tests")


def test_a_token_grants_its_key_content_type_and_expiry() -> None:
    before = int(time.time())
    grant = SIGNER.verify(SIGNER.sign("renditions/x/thumb.webp", expires_in=60, content_type="image/webp"))
    assert (grant.key, grant.content_type) == ("renditions/x/thumb.webp", "image/webp")
    assert before + 60 <= grant.expires_at <= int(time.time()) + 60


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = DownloadSigner("some-other-secret-entirely").sign("a/b", expires_in=60)
    with pytest.raises(InvalidDownloadLink):
        SIGNER.verify(token)


def test_a_payload_moved_onto_another_tokens_signature_is_refused() -> None:
    mine, yours = SIGNER.sign("a/mine", expires_in=60), SIGNER.sign("a/yours", expires_in=60)
    with pytest.raises(InvalidDownloadLink):
        SIGNER.verify(yours.rsplit(".", 1)[0] + "." + mine.rsplit(".", 1)[1])


def test_an_expired_token_is_refused() -> None:
    token = SIGNER.sign("a/b", expires_in=0)
    with pytest.raises(InvalidDownloadLink, match="expired"):
        SIGNER.verify(token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJrIjoxfQ.x"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidDownloadLink):
        SIGNER.verify(token)


def test_a_token_cannot_be_made_for_an_unsafe_key() -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        SIGNER.sign("../etc/passwd", expires_in=60)
