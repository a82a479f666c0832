"""A real JWKS endpoint on 127.0.0.1, serving the public halves of RSA keys a test controls."""

from __future__ import annotations

import json
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

JWKS_PATH = "/.well-known/jwks.json"


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per name for the whole run (generation is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer:
    """Serves `keys` as a JWKS, counts requests, and can be told to fail or to serve any body."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.failing_status: int | None = None
        self.raw_body: bytes | None = None
        self.requests = 0
        self._stopped = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.issuer + JWKS_PATH

    def publish(self, *names: str) -> None:
        """Serve exactly these keys (named by their kid) from now on."""
        self.keys = {name: rsa_key(name) for name in names}

    def sign(self, claims: dict[str, Any], kid: str | None = "key-1", key: str | None = None) -> str:
        """An RS256 token signed by key `key` (default: the key named `kid`) with `kid` in its header."""
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(claims, rsa_key(key or kid or "key-1"), algorithm="RS256", headers=headers)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private_key in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def stop(self) -> None:
        """Close the port: later fetches see a refused connection."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                if self.path != JWKS_PATH:
                    self._send(404, b"{}")
                elif server.failing_status is not None:
                    self._send(server.failing_status, b"upstream trouble")
                else:
                    self._send(200, server.raw_body or json.dumps(server.jwks()).encode())

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler
