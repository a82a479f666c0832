"""Which remote URLs an import may reach: allowed schemes, and public addresses only (SSRF guard)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.errors import DomainError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` lets through (or that name cloud metadata) that must never be fetched.
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT, also Alibaba's metadata 100.100.100.200
        "169.254.0.0/16",  # link-local, AWS/GCP/Azure metadata 169.254.169.254
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "::/8",  # IPv4-compatible ::a.b.c.d and translated ::ffff:0:a.b.c.d (mapped ones are unwrapped first)
        "fec0::/10",  # deprecated site-local, still routed inside some networks
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "64:ff9b::/96",  # NAT64 would reach any IPv4 address, private ones included
        "64:ff9b:1::/48",
        "2002::/16",  # 6to4 embeds an IPv4 address
    )
)
DEFAULT_PORTS = {"http": 80, "https": 443}
# C0 controls and DEL: urlsplit silently drops some (tab, CR, LF) and PostgreSQL text refuses NUL.
CONTROL_CHARACTERS = frozenset(map(chr, [*range(0x20), 0x7F]))


class FetchRefused(DomainError):
    """An import source that may not or could not be fetched; `code` is recorded on the asset."""

    type, status, title = "source-url-refused", 422, "The source URL cannot be imported"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail, code=code)
        self.code = code


@dataclass(frozen=True)
class Target:
    """One request's destination, parsed from a URL; the host is what TLS and `Host` must name."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_target(url: str, *, allow_http: bool) -> Target:
    """The URL's destination if its shape and scheme are acceptable; FetchRefused otherwise."""
    if not CONTROL_CHARACTERS.isdisjoint(url.strip()):
        raise FetchRefused("invalid-url", "The source URL contains control characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise FetchRefused("invalid-url", "The source URL is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in (("https", "http") if allow_http else ("https",)):
        raise FetchRefused("scheme-not-allowed", "Only https source URLs are accepted.")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise FetchRefused("invalid-url", "The source URL needs a host and no credentials.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme], path)


def address_allowed(address: IPAddress, *, allow_loopback: bool = False) -> bool:
    """True for globally routable unicast addresses (and loopback only when tests allow it)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allow_loopback and address.is_loopback:
        return True
    return address.is_global and not any(address in network for network in BLOCKED_NETWORKS)


def literal_address(host: str) -> IPAddress | None:
    """The address `host` names by itself, in any form the resolver reads as one (`2130706433`, `0x7f.1`)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # The resolver's own numeric parser, without DNS: it decides what the worker would connect to.
        infos = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def check_literal_host(target: Target, *, allow_loopback: bool) -> None:
    """Refuse a URL whose host is a forbidden IP literal, without resolving names (cheap, for the API)."""
    address = literal_address(target.host)
    if address is not None and not address_allowed(address, allow_loopback=allow_loopback):
        raise FetchRefused("blocked-address", "The source URL points at a private or reserved address.")


def resolve_public(target: Target, *, allow_loopback: bool) -> list[str]:
    """Every address the host resolves to, all of them public; any private one refuses the whole host."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchRefused("unresolvable", f"The host {target.host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise FetchRefused("unresolvable", f"The host {target.host!r} does not resolve.")
    for address in addresses:
        if not address_allowed(ipaddress.ip_address(address), allow_loopback=allow_loopback):
            raise FetchRefused(
                "blocked-address", f"The host {target.host!r} resolves to a non-public address."
            )
    return addresses
