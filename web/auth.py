"""Bearer-token identity: Clerk RS256 tokens via JWKS, or HS256 development tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from flask import g, request

from core.settings import DEV_PLACEHOLDER, Settings
from models.errors import Unauthorized
from models.tables import User
from models.users import ensure_user
from web.db import db
from web.jwks import JwksCache, JwksUnavailable

DEV_ISSUER = "iskra-dev"
REQUIRED_CLAIMS = ["sub", "iss", "exp", "iat"]
# users.email is varchar(320); RFC 5321 allows 254, so a longer claim is not an address worth keeping.
MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True)
class Identity:
    user_id: str
    email: str


class Authenticator:
    """Verifies bearer tokens with pinned algorithms; every failure is an `Unauthorized`."""

    jwks: JwksCache | None

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        if settings.auth_mode == "clerk":
            self.issuer = (settings.clerk_jwt_issuer_domain or "").rstrip("/")
            self.algorithm = "RS256"
            self.jwks = jwks or JwksCache(
                settings.jwks_url,
                max_age_seconds=settings.jwks_cache_seconds,
                refetch_cooldown_seconds=settings.jwks_refetch_cooldown_seconds,
            )
        else:
            self.issuer, self.algorithm, self.jwks = DEV_ISSUER, "HS256", None

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The token is not a well-formed JWT.") from None
        if header.get("alg") != self.algorithm:
            raise Unauthorized(f"Tokens must be signed with {self.algorithm}.")
        audience = self.settings.jwt_audience or None
        try:
            claims = jwt.decode(
                token,
                self._key(header),
                algorithms=[self.algorithm],
                audience=audience,
                issuer=self.issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": REQUIRED_CLAIMS, "verify_aud": audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("The token is not valid yet.") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"The token was refused: {error}.") from None
        return self._identity(claims)

    def _key(self, header: dict[str, object]) -> str | jwt.PyJWK:
        if self.jwks is None:
            secret = dev_secret(self.settings)
            if secret is None:
                raise Unauthorized("Development tokens need DEV_JWT_SECRET to be set.")
            return secret
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("The token names no signing key.")
        try:
            key = self.jwks.key_for(kid)
        except JwksUnavailable:
            raise Unauthorized("Signing keys are unavailable; try again shortly.") from None
        if key is None:
            raise Unauthorized("The token's signing key is unknown.")
        return key

    def _identity(self, claims: dict[str, object]) -> Identity:
        allowed = self.settings.jwt_authorized_parties
        if allowed and claims.get("azp") not in allowed:
            raise Unauthorized("The token's authorized party is not allowed.")
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 128 or not subject.isprintable():
            raise Unauthorized("The token's subject is not a user id.")
        email = claims.get("email")
        # Kept only if the users table can hold it: no NUL, control characters or lone surrogates.
        if not isinstance(email, str) or len(email) > MAX_EMAIL_LENGTH or not email.isprintable():
            email = ""
        return Identity(user_id=subject, email=email)


def dev_secret(settings: Settings) -> str | None:
    """The configured development secret; None while it is the public placeholder from the source."""
    secret = settings.dev_jwt_secret.get_secret_value()
    return None if secret == DEV_PLACEHOLDER else secret


def make_dev_token(settings: Settings, user_id: str, email: str = "", ttl_seconds: int = 86_400) -> str:
    """An HS256 development token for any user id (AUTH_MODE=dev only)."""
    if settings.auth_mode != "dev":
        raise RuntimeError("development tokens need AUTH_MODE=dev")
    secret = dev_secret(settings)
    if secret is None:
        raise RuntimeError("development tokens need DEV_JWT_SECRET to be set")
    now = int(time.time())
    claims = {"sub": user_id, "iss": DEV_ISSUER, "iat": now, "nbf": now, "exp": now + ttl_seconds}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer_token() -> str | None:
    """The request's bearer token, if it carries one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def signed_in_user() -> User:
    """The caller's user row, created on first sight with its first project (in the view's transaction)."""
    identity = current_identity()
    return ensure_user(db(), identity.user_id, identity.email)


def current_identity() -> Identity:
    """Who is calling; set by the blueprint's authentication hook."""
    identity = g.get("identity")
    if identity is None:
        raise Unauthorized()
    return identity
