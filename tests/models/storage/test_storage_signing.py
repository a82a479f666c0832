"""Local download tokens: signed with SIGNING_SECRET, bound to one key, expiring."""

from __future__ import annotations

import time

import pytest

from models.errors import InvalidDownloadLink
from models.storage.signing import DownloadSigner, SigningWindow, hourly_window

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


def test_a_token_signed_as_of_a_moment_is_the_same_token_whenever_it_is_made() -> None:
    signed_at = int(time.time()) // 3600 * 3600
    first = SIGNER.sign("a/b", expires_in=7200, content_type="image/webp", signed_at=signed_at)
    time.sleep(1.1)
    assert SIGNER.sign("a/b", expires_in=7200, content_type="image/webp", signed_at=signed_at) == first
    assert SIGNER.verify(first).expires_at == signed_at + 7200


TEN = 1_796_000_400  # 10:00:00 UTC on some day: a multiple of 3600


@pytest.mark.parametrize("offset", [0, 1, 1800, 3599])
def test_every_moment_of_a_clock_hour_gets_the_same_window(offset: int) -> None:
    assert TEN % 3600 == 0
    assert hourly_window(TEN + offset + 0.5, 3600) == SigningWindow(signed_at=TEN, expires_in=7200)


def test_the_next_hour_gets_the_next_window() -> None:
    assert hourly_window(TEN + 3600, 3600) == SigningWindow(signed_at=TEN + 3600, expires_in=7200)


@pytest.mark.parametrize(
    ("ttl", "expires_in"), [(0, 7200), (1, 7200), (3600, 7200), (3601, 10800), (86400, 90000)]
)
def test_the_window_outlives_the_ttl_from_any_moment_of_the_hour(ttl: int, expires_in: int) -> None:
    window = hourly_window(TEN + 3599, ttl)
    assert window.expires_in == expires_in
    assert window.expires_at - (TEN + 3599) > max(ttl, 3600)  # at least the TTL and at least an hour
    assert window.expires_at % 3600 == 0
