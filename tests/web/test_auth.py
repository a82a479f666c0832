"""Bearer-token identity at the /v1 edge: Clerk RS256 tokens against a live JWKS, and dev tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from core.settings import DEV_PLACEHOLDER
from tests.conftest import build_services
from tests.jwks_server import rsa_key
from web.app import create_app
from web.auth import make_dev_token


def claims(issuer: str, **changes: Any) -> dict[str, Any]:
    """A valid Clerk-style claim set; a change to None drops that claim."""
    now = int(time.time())
    base = {
        "sub": "user_clerk",
        "iss": issuer,
        "aud": "convex",
        "iat": now - 5,
        "nbf": now - 5,
        "exp": now + 300,
        "email": "clerk@example.com",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def now() -> int:
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_built(header: dict[str, Any], payload: dict[str, Any], sign: Any = None) -> str:
    """A JWT assembled without PyJWT, for tokens PyJWT refuses to make."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


def public_pem(name: str) -> bytes:
    return (
        rsa_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "unauthorized"
    assert response.json["status"] == 401


@pytest.fixture
def clerk_app(settings, engine, sessions, jwks_server):
    """Build the API in Clerk mode against the test's JWKS server, with optional setting changes."""

    def build(**changes: Any):
        clerk = settings.model_copy(
            update={
                "auth_mode": "clerk",
                "clerk_jwt_issuer_domain": jwks_server.issuer,
                "jwt_audience": "convex",
                **changes,
            }
        )
        return create_app(clerk, build_services(clerk, engine, sessions))

    return build


def client_of(app):
    """A test client with an address of its own, so refusals never share a per-IP rate-limit bucket."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    return client


@pytest.fixture
def clerk_client(clerk_app):
    return client_of(clerk_app())


@pytest.fixture
def dev_client(app):
    return client_of(app)


def test_a_valid_clerk_token_identifies_the_user_and_their_email(clerk_client, jwks_server):
    token = jwks_server.sign(claims(jwks_server.issuer, sub="user_2abcClerk", email="ada@example.com"))

    response = clerk_client.get("/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert (response.json["userId"], response.json["email"]) == ("user_2abcClerk", "ada@example.com")


def test_a_clerk_token_without_an_email_claim_gives_an_empty_email(clerk_client, jwks_server):
    token = jwks_server.sign(claims(jwks_server.issuer, sub="user_noemail", email=None))

    response = clerk_client.get("/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json["email"] == ""


def test_a_token_expired_within_the_leeway_is_still_accepted(clerk_client, jwks_server):
    now = int(time.time())
    token = jwks_server.sign(claims(jwks_server.issuer, iat=now - 70, nbf=now - 70, exp=now - 10))

    assert clerk_client.get("/v1/me", headers=bearer(token)).status_code == 200


def _none_alg(server) -> str:
    return hand_built({"alg": "none", "typ": "JWT", "kid": "key-1"}, claims(server.issuer))


def _hs256_with_public_pem(server) -> str:
    # The classic algorithm confusion: HMAC keyed with the RSA public key a naive verifier would load.
    pem = public_pem("key-1")
    return hand_built(
        {"alg": "HS256", "typ": "JWT", "kid": "key-1"},
        claims(server.issuer),
        sign=lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
    )


REFUSED_TOKENS = {
    "expired": lambda s: s.sign(claims(s.issuer, iat=now() - 600, nbf=now() - 600, exp=now() - 120)),
    "not-yet-valid": lambda s: s.sign(claims(s.issuer, nbf=now() + 120)),
    "issued-in-the-future": lambda s: s.sign(claims(s.issuer, iat=now() + 120)),
    "iat-missing": lambda s: s.sign(claims(s.issuer, iat=None)),
    "exp-missing": lambda s: s.sign(claims(s.issuer, exp=None)),
    "sub-missing": lambda s: s.sign(claims(s.issuer, sub=None)),
    "iss-missing": lambda s: s.sign(claims(s.issuer, iss=None)),
    "wrong-issuer": lambda s: s.sign(claims(s.issuer, iss="https://clerk.evil.example")),
    "issuer-prefix": lambda s: s.sign(claims(s.issuer, iss=s.issuer[:-1])),
    "wrong-audience": lambda s: s.sign(claims(s.issuer, aud="other-template")),
    "audience-absent": lambda s: s.sign(claims(s.issuer, aud=None)),
    "alg-none": _none_alg,
    "hs256-with-public-key-pem": _hs256_with_public_pem,
    "signed-by-another-key": lambda s: s.sign(claims(s.issuer), kid="key-1", key="key-intruder"),
    "unknown-kid": lambda s: s.sign(claims(s.issuer), kid="key-unknown"),
    "no-kid": lambda s: s.sign(claims(s.issuer), kid=None, key="key-1"),
    "garbage": lambda s: "not-a-jwt",
    "three-garbage-parts": lambda s: "e30.e30.AAAA",
}


@pytest.mark.parametrize("make_token", REFUSED_TOKENS.values(), ids=REFUSED_TOKENS.keys())
def test_a_bad_clerk_token_is_refused_as_unauthorized(clerk_client, jwks_server, make_token):
    response = clerk_client.get("/v1/me", headers=bearer(make_token(jwks_server)))

    assert_unauthorized(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="iskra", error="invalid_token"'


def test_a_request_without_an_authorization_header_is_unauthorized(clerk_client):
    response = clerk_client.get("/v1/me")

    assert_unauthorized(response)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="iskra"'


def test_basic_credentials_are_not_a_bearer_token(clerk_client):
    response = clerk_client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNzd29yZA=="})

    assert_unauthorized(response)


def test_an_empty_audience_setting_accepts_tokens_without_aud(clerk_app, jwks_server):
    client = client_of(clerk_app(jwt_audience=""))
    token = jwks_server.sign(claims(jwks_server.issuer, aud=None))

    assert client.get("/v1/me", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("azp", ["https://evil.example", None], ids=["foreign-party", "no-azp"])
def test_a_party_outside_the_allow_list_is_refused(clerk_app, jwks_server, azp):
    client = client_of(clerk_app(jwt_authorized_parties=("http://localhost:3000",)))
    token = jwks_server.sign(claims(jwks_server.issuer, azp=azp))

    assert_unauthorized(client.get("/v1/me", headers=bearer(token)))


def test_a_party_in_the_allow_list_is_accepted(clerk_app, jwks_server):
    client = client_of(clerk_app(jwt_authorized_parties=("https://app.example", "http://localhost:3000")))
    token = jwks_server.sign(claims(jwks_server.issuer, azp="http://localhost:3000"))

    assert client.get("/v1/me", headers=bearer(token)).status_code == 200


def test_an_unreachable_jwks_with_no_keys_ever_fetched_is_unauthorized(clerk_client, jwks_server):
    token = jwks_server.sign(claims(jwks_server.issuer))
    jwks_server.stop()

    response = clerk_client.get("/v1/me", headers=bearer(token))

    assert_unauthorized(response)
    assert "unavailable" in response.json["detail"]


def test_a_dev_token_identifies_the_user_in_dev_mode(dev_client, settings):
    token = make_dev_token(settings, "user_dev", "dev@example.com")

    response = dev_client.get("/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert (response.json["userId"], response.json["email"]) == ("user_dev", "dev@example.com")


def test_a_dev_token_signed_with_another_secret_is_refused(dev_client, settings):
    other = settings.model_copy(update={"dev_jwt_secret": SecretStr("another-secret-long-enough-for-hs256!")})

    assert_unauthorized(dev_client.get("/v1/me", headers=bearer(make_dev_token(other, "user_dev"))))


def test_dev_mode_refuses_clerk_rs256_tokens(dev_client, jwks_server):
    token = jwks_server.sign(claims("iskra-dev"))

    assert_unauthorized(dev_client.get("/v1/me", headers=bearer(token)))


def test_an_expired_dev_token_is_refused(dev_client, settings):
    token = make_dev_token(settings, "user_dev", ttl_seconds=-60)

    assert_unauthorized(dev_client.get("/v1/me", headers=bearer(token)))


def test_dev_tokens_cannot_be_made_in_clerk_mode(settings, jwks_server):
    clerk = settings.model_copy(update={"auth_mode": "clerk", "clerk_jwt_issuer_domain": jwks_server.issuer})

    with pytest.raises(RuntimeError, match="AUTH_MODE=dev"):
        make_dev_token(clerk, "user_dev")


def test_a_dev_token_round_trips_its_claims(settings):
    token = make_dev_token(settings, "user_claims", "c@example.com", ttl_seconds=120)

    decoded = jwt.decode(
        token, settings.dev_jwt_secret.get_secret_value(), algorithms=["HS256"], audience="convex"
    )

    assert (decoded["sub"], decoded["email"], decoded["exp"] - decoded["iat"]) == (
        "user_claims",
        "c@example.com",
        120,
    )


def test_dev_mode_without_a_configured_secret_refuses_tokens_signed_with_the_public_placeholder(
    settings, engine, sessions
):
    unset = settings.model_copy(update={"dev_jwt_secret": SecretStr(DEV_PLACEHOLDER)})
    client = client_of(create_app(unset, build_services(unset, engine, sessions)))
    forged = jwt.encode(
        claims("iskra-dev", sub="user_anyone", email=None), DEV_PLACEHOLDER, algorithm="HS256"
    )

    response = client.get("/v1/me", headers=bearer(forged))

    assert_unauthorized(response)
    assert "DEV_JWT_SECRET" in response.json["detail"]
    with pytest.raises(RuntimeError, match="DEV_JWT_SECRET"):
        make_dev_token(unset, "user_anyone")


@pytest.mark.parametrize(
    "subject",
    ["user_\x00x", "user_\nx", "user_\u202ex", "user_\ud800"],
    ids=["nul", "newline", "bidi", "surrogate"],
)
def test_a_subject_with_control_characters_is_refused(dev_client, settings, subject):
    token = jwt.encode(
        claims("iskra-dev", sub=subject), settings.dev_jwt_secret.get_secret_value(), algorithm="HS256"
    )

    assert_unauthorized(dev_client.get("/v1/me", headers=bearer(token)))


@pytest.mark.parametrize(
    "email",
    ["a\x00@example.com", "a\ud800@example.com", "a" * 400 + "@example.com"],
    ids=["nul", "surrogate", "too-long"],
)
def test_an_email_claim_that_cannot_be_stored_is_dropped_not_a_crash(dev_client, settings, email):
    token = jwt.encode(
        claims("iskra-dev", sub="user_odd_email", email=email),
        settings.dev_jwt_secret.get_secret_value(),
        algorithm="HS256",
    )

    response = dev_client.get("/v1/me", headers=bearer(token))

    assert (response.status_code, response.json["email"]) == (200, "")


def v1_routes(app) -> list[tuple[str, str]]:
    """Every (method, concrete path) the app serves under /v1, path parameters filled with a fresh id."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1"):
            continue
        path = rule.build({name: str(uuid.uuid4()) for name in rule.arguments}, append_unknown=False)[1]
        routes += [(method, path) for method in sorted(rule.methods - {"OPTIONS"})]
    return routes


@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-token", "bad-token"])
def test_every_v1_route_and_method_refuses_a_request_without_a_verified_token(app, token):
    headers = bearer(token) if token else {}
    routes = v1_routes(app)

    # A client (so an address) per request: the per-address limit on refusals must not answer first.
    refused = {
        (method, path): client_of(app).open(path, method=method, headers=headers) for method, path in routes
    }

    assert len(routes) >= 13, routes
    assert {key: r.status_code for key, r in refused.items()} == dict.fromkeys(refused, 401)
