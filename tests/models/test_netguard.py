"""The import URL policy: schemes, and public addresses only."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from core.netguard import FetchRefused, address_allowed, check_literal_host, parse_target, resolve_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.100.100.200",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00:ec2::254",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:7f00:1::",
        "::127.0.0.1",
        "::10.0.0.1",
        "::ffff:0:127.0.0.1",
        "fec0::1",
    ],
)
def test_private_reserved_and_metadata_addresses_are_refused(address):
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.69", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert address_allowed(ipaddress.ip_address(address))


def test_loopback_is_allowed_only_when_the_test_setting_says_so():
    loopback, private = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")

    assert address_allowed(loopback, allow_loopback=True)
    assert address_allowed(ipaddress.ip_address("::1"), allow_loopback=True)
    assert not address_allowed(private, allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "allow_http", "code"),
    [
        ("http://example.com/a.png", False, "scheme-not-allowed"),
        ("ftp://example.com/a.png", True, "scheme-not-allowed"),
        ("javascript:alert(1)", True, "scheme-not-allowed"),
        ("https:///a.png", False, "invalid-url"),
        ("https://user@example.com/a.png", False, "invalid-url"),
        ("https://example.com:99999/a.png", False, "invalid-url"),
        ("https://example.com/a\x00.png", False, "invalid-url"),
        ("https://example.com/a\x7f.png", False, "invalid-url"),
        ("https://exam\tple.com/a.png", False, "invalid-url"),
        ("https://example.com/a.png\r\nX-Injected: 1", False, "invalid-url"),
    ],
)
def test_malformed_urls_and_disallowed_schemes_are_refused(url, allow_http, code):
    with pytest.raises(FetchRefused) as refused:
        parse_target(url, allow_http=allow_http)

    assert refused.value.code == code


def test_a_target_keeps_the_host_for_tls_and_the_host_header():
    target = parse_target("HTTPS://Media.Example.com:8443/out/a.png?sig=1", allow_http=False)

    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "media.example.com",
        8443,
        "/out/a.png?sig=1",
    )
    assert target.host_header == "media.example.com:8443"
    assert parse_target("http://[::1]/", allow_http=True).host_header == "[::1]"


def test_a_literal_metadata_address_is_refused_without_resolving():
    with pytest.raises(FetchRefused) as refused:
        check_literal_host(parse_target("https://169.254.169.254/", allow_http=False), allow_loopback=True)

    assert refused.value.code == "blocked-address"


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f000001", "0x7f.1", "017700000001", "127.1", "0", "0251.0376.0251.0376"]
)
def test_ipv4_literals_in_the_resolvers_legacy_forms_are_judged_without_resolving(host, monkeypatch):
    monkeypatch.setattr("core.netguard.socket.getaddrinfo", _numeric_only(socket.getaddrinfo))

    with pytest.raises(FetchRefused) as refused:
        check_literal_host(parse_target(f"https://{host}/a.png", allow_http=False), allow_loopback=False)

    assert refused.value.code == "blocked-address"


def test_a_public_ipv4_literal_in_a_legacy_form_passes_and_names_stay_unresolved(monkeypatch):
    monkeypatch.setattr("core.netguard.socket.getaddrinfo", _numeric_only(socket.getaddrinfo))

    check_literal_host(parse_target("https://134744072/a.png", allow_http=False), allow_loopback=False)
    check_literal_host(parse_target("https://cdn.example.com/a.png", allow_http=False), allow_loopback=False)


def _numeric_only(real):
    """getaddrinfo that fails the test if asked to look a name up in DNS."""

    def numeric(host, port, *args, flags=0, **kwargs):
        assert flags & socket.AI_NUMERICHOST, f"{host!r} was resolved through DNS"
        return real(host, port, *args, flags=flags, **kwargs)

    return numeric


def test_a_name_resolving_to_loopback_is_refused_unless_allowed():
    target = parse_target("https://localhost/a.png", allow_http=False)

    with pytest.raises(FetchRefused) as refused:
        resolve_public(target, allow_loopback=False)

    assert refused.value.code == "blocked-address"
    assert set(resolve_public(target, allow_loopback=True)) <= {"127.0.0.1", "::1"}


def test_a_name_with_any_private_address_is_refused(monkeypatch):
    answers = [(2, 1, 6, "", ("93.184.216.34", 443)), (2, 1, 6, "", ("10.0.0.5", 443))]
    monkeypatch.setattr("core.netguard.socket.getaddrinfo", lambda *_, **__: answers)

    with pytest.raises(FetchRefused) as refused:
        resolve_public(parse_target("https://mixed.example/", allow_http=False), allow_loopback=False)

    assert refused.value.code == "blocked-address"


def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(FetchRefused) as refused:
        resolve_public(parse_target("https://no-such-host.invalid/", allow_http=False), allow_loopback=False)

    assert refused.value.code == "unresolvable"
