"""The SSRF-safe downloader: vetted addresses only, pinned connections, hand-followed redirects."""

from __future__ import annotations

import io
import socket

import pytest

from core.netguard import FetchRefused
from tests.workers.remote_files import IMAGE, remote_files
from workers.fetch import FetchPolicy, download

TEST_POLICY = FetchPolicy(allow_http=True, allow_loopback=True, max_bytes=1024 * 1024, timeout_seconds=3)


@pytest.fixture(scope="module")
def server():
    with remote_files() as running:
        yield running


def test_a_file_is_downloaded_byte_exact(server):
    out = io.BytesIO()

    result = download(server.url("/image.jpg"), out, TEST_POLICY)

    assert (result.size, out.getvalue()) == (len(IMAGE), IMAGE)


def test_five_redirects_are_followed_and_a_sixth_is_refused(server):
    assert download(server.url("/hop/5"), io.BytesIO(), TEST_POLICY).final_url.endswith("/image.jpg")

    with pytest.raises(FetchRefused) as refused:
        download(server.url("/hop/6"), io.BytesIO(), TEST_POLICY)

    assert refused.value.code == "too-many-redirects"


def test_the_connection_goes_to_the_vetted_address_and_dns_is_not_asked_again(server, monkeypatch):
    calls, real_getaddrinfo = [], socket.getaddrinfo

    def rebinding_resolver(host, port, *args, **kwargs):
        if host[0].isdigit():  # the connect step resolving a literal address: nothing to rebind
            return real_getaddrinfo(host, port, *args, **kwargs)
        # First answer passes the check; any later lookup of the name would get the metadata address.
        calls.append(host)
        address = "127.0.0.1" if len(calls) == 1 else "169.254.169.254"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr("core.netguard.socket.getaddrinfo", rebinding_resolver)
    port = server.server_address[1]
    out = io.BytesIO()

    download(f"http://media.example.test:{port}/image.jpg", out, TEST_POLICY)

    assert calls == ["media.example.test"]
    assert out.getvalue() == IMAGE
    assert server.hosts_seen[-1] == f"media.example.test:{port}"


def test_an_https_source_must_present_a_valid_certificate_for_its_host(server):
    port = server.server_address[1]

    with pytest.raises(FetchRefused) as refused:
        download(f"https://127.0.0.1:{port}/image.jpg", io.BytesIO(), TEST_POLICY)

    assert refused.value.code == "download-failed"


def test_a_non_200_answer_is_a_failed_download(server):
    with pytest.raises(FetchRefused) as refused:
        download(server.url("/missing"), io.BytesIO(), TEST_POLICY)

    assert refused.value.code == "download-failed"


@pytest.mark.parametrize("path", ["/length-superscript", "/to-broken-ipv6"])
def test_a_malformed_length_or_redirect_is_a_failed_download_not_a_crash(server, path):
    with pytest.raises(FetchRefused) as refused:
        download(server.url(path), io.BytesIO(), TEST_POLICY)

    assert refused.value.code == "download-failed"
