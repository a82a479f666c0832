"""Download a remote file for an import without letting the URL reach anything but public hosts.

Every hop (the first URL and each redirect) is parsed, its host resolved and every address vetted;
the connection then goes to the vetted address itself while TLS (SNI, certificate) and `Host` still
name the host, so a DNS answer that changes between the check and the connect (rebinding) is never
used. Redirects are followed by hand, at most MAX_REDIRECTS. Bytes and wall time are capped.
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin

import certifi
import urllib3
from urllib3.exceptions import HTTPError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from core.netguard import FetchRefused, Target, parse_target, resolve_public

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
# A single read may wait this long; the overall deadline is checked between reads.
READ_STALL_SECONDS = 10.0
USER_AGENT = "IskraMedia-Import/1"


@dataclass(frozen=True)
class FetchPolicy:
    allow_http: bool
    allow_loopback: bool
    max_bytes: int
    timeout_seconds: float


@dataclass(frozen=True)
class Downloaded:
    size: int
    final_url: str


def _open(
    target: Target, address: str, remaining: float
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    timeout = urllib3.Timeout(connect=min(remaining, 5.0), read=min(remaining, READ_STALL_SECONDS))
    if target.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            maxsize=1,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=1)
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "image/*, video/*",
        "Accept-Encoding": "identity",
    }
    return pool, pool.urlopen(
        "GET",
        target.path,
        headers=headers,
        redirect=False,
        retries=False,
        preload_content=False,
        timeout=timeout,
        assert_same_host=False,
    )


def _declared_length(response: urllib3.BaseHTTPResponse) -> int | None:
    """The announced body size; FetchRefused when the header is there but not a plain number."""
    declared = response.headers.get("Content-Length")
    if declared is None:
        return None
    # str.isdigit() also holds for "²" or "٣", which int() refuses or reads as another number.
    if not (declared.isascii() and declared.isdigit()):
        raise FetchRefused("download-failed", "The source sent a malformed Content-Length.")
    return int(declared)


def _copy(response: urllib3.BaseHTTPResponse, dest: BinaryIO, policy: FetchPolicy, deadline: float) -> int:
    declared = _declared_length(response)
    if declared is not None and declared > policy.max_bytes:
        raise FetchRefused(
            "too-large", f"The source declares {declared} bytes; the limit is {policy.max_bytes}."
        )
    size = 0
    while chunk := response.read1(CHUNK_BYTES):
        size += len(chunk)
        if size > policy.max_bytes:
            raise FetchRefused("too-large", f"The source is larger than {policy.max_bytes} bytes.")
        if time.monotonic() > deadline:
            raise FetchRefused("timeout", f"The download took longer than {policy.timeout_seconds} s.")
        dest.write(chunk)
    return size


def _fetch(url: str, dest: BinaryIO, policy: FetchPolicy, deadline: float) -> Downloaded:
    for redirects in range(MAX_REDIRECTS + 1):
        target = parse_target(url, allow_http=policy.allow_http)
        address = resolve_public(target, allow_loopback=policy.allow_loopback)[0]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchRefused("timeout", f"The download took longer than {policy.timeout_seconds} s.")
        pool, response = _open(target, address, remaining)
        try:
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location")
                if not location:
                    raise FetchRefused("download-failed", "A redirect named no Location.")
                if redirects == MAX_REDIRECTS:
                    raise FetchRefused("too-many-redirects", f"More than {MAX_REDIRECTS} redirects.")
                try:
                    url = urljoin(url, location)
                except ValueError:  # e.g. `https://[x`: an unclosed IPv6 literal
                    raise FetchRefused("download-failed", "A redirect named a malformed Location.") from None
                continue
            if response.status != 200:
                raise FetchRefused("download-failed", f"The source answered HTTP {response.status}.")
            return Downloaded(size=_copy(response, dest, policy, deadline), final_url=url)
        finally:
            response.close()
            pool.close()
    raise AssertionError("unreachable: the loop returns or raises")


def download(url: str, dest: BinaryIO, policy: FetchPolicy) -> Downloaded:
    """Write the body at `url` (after vetted redirects) to `dest`; FetchRefused with a code otherwise."""
    deadline = time.monotonic() + policy.timeout_seconds
    try:
        return _fetch(url, dest, policy, deadline)
    except (Urllib3Timeout, TimeoutError):
        raise FetchRefused(
            "timeout", f"The source did not answer within {policy.timeout_seconds} s."
        ) from None
    except (HTTPError, OSError, http.client.HTTPException, ValueError) as error:
        # ValueError and HTTPException: whatever else a hostile answer makes the parsers refuse ends the
        # import with a code now, instead of crashing the task and leaving the asset pending.
        raise FetchRefused("download-failed", f"The download failed: {type(error).__name__}.") from None
