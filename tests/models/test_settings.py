"""Settings: read once from the environment, with production refusing unsafe development defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEV_PLACEHOLDER, Settings

CLERK = {"auth_mode": "clerk", "clerk_jwt_issuer_domain": "https://clerk.iskra.example"}
REAL_SECRET = "a-real-production-signing-secret-0123456789"


def test_production_refuses_development_authentication():
    with pytest.raises(ValidationError, match="AUTH_MODE=dev"):
        Settings(_env_file=None, environment="production", auth_mode="dev", signing_secret=REAL_SECRET)


def test_production_refuses_the_placeholder_signing_secret():
    with pytest.raises(ValidationError, match="SIGNING_SECRET"):
        Settings(_env_file=None, environment="production", **CLERK)


@pytest.mark.parametrize("secret", ["", "x" * 31, "change-me-in-production", DEV_PLACEHOLDER])
def test_production_refuses_an_empty_short_or_published_signing_secret(secret):
    with pytest.raises(ValidationError, match="SIGNING_SECRET"):
        Settings(_env_file=None, environment="production", signing_secret=secret, **CLERK)


@pytest.mark.parametrize("secret", ["", " ", "change-me-in-production", DEV_PLACEHOLDER])
def test_production_refuses_an_empty_or_published_s3_secret(secret):
    with pytest.raises(ValidationError, match="AWS_SECRET_ACCESS_KEY"):
        Settings(
            _env_file=None, environment="production", signing_secret=REAL_SECRET, **CLERK,
            storage_backend="s3", aws_access_key_id="iskra", aws_secret_access_key=secret,
        )  # fmt: skip


def test_production_takes_a_provider_issued_s3_secret_of_any_length():
    issued = "K001abcdefghijklmnopqrstuvwxyz0"  # 31 characters, as Backblaze issues them

    settings = Settings(
        _env_file=None, environment="production", signing_secret=REAL_SECRET, **CLERK,
        storage_backend="s3", aws_secret_access_key=issued,
    )  # fmt: skip

    assert settings.aws_secret_access_key.get_secret_value() == issued


@pytest.mark.parametrize(
    "auth", ["admin:admin", "operator:" + "x" * 31, ":" + "x" * 40, "x" * 40, "ops:secret"]
)
def test_production_refuses_a_weak_flower_password(auth):
    with pytest.raises(ValidationError, match="FLOWER_BASIC_AUTH"):
        Settings(
            _env_file=None,
            environment="production",
            signing_secret=REAL_SECRET,
            flower_basic_auth=auth,
            **CLERK,
        )


@pytest.mark.parametrize("auth", ["prometheus:prometheus", "prometheus:", "prometheus"])
def test_production_refuses_weak_metrics_credentials(auth):
    with pytest.raises(ValidationError, match="METRICS_BASIC_AUTH"):
        Settings(
            _env_file=None,
            environment="production",
            signing_secret=REAL_SECRET,
            metrics_basic_auth=auth,
            **CLERK,
        )


def test_secrets_read_from_the_environment_are_checked_in_production(monkeypatch):
    for name, value in {"ENVIRONMENT": "production", "AUTH_MODE": "clerk", "SIGNING_SECRET": REAL_SECRET,
                        "CLERK_JWT_ISSUER_DOMAIN": CLERK["clerk_jwt_issuer_domain"],
                        "AWS_SECRET_ACCESS_KEY": "change-me-in-production"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match="AWS_SECRET_ACCESS_KEY"):
        Settings(_env_file=None)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "a-provider-issued-secret-0123456789")
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "operator:" + "p" * 32)
    assert Settings(_env_file=None).environment == "production"


def test_production_starts_with_clerk_and_a_real_signing_secret():
    settings = Settings(_env_file=None, environment="production", signing_secret=REAL_SECRET, **CLERK)

    assert (settings.environment, settings.auth_mode) == ("production", "clerk")


def test_development_allows_dev_authentication_with_placeholders():
    assert Settings(_env_file=None, environment="development", auth_mode="dev").auth_mode == "dev"


def test_clerk_mode_needs_an_issuer():
    with pytest.raises(ValidationError, match="CLERK_JWT_ISSUER_DOMAIN"):
        Settings(_env_file=None, auth_mode="clerk")


def test_production_refusal_applies_to_settings_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("AUTH_MODE", "dev")
    monkeypatch.setenv("SIGNING_SECRET", REAL_SECRET)

    with pytest.raises(ValidationError, match="AUTH_MODE=dev"):
        Settings(_env_file=None)


def test_comma_separated_lists_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_AUTHORIZED_PARTIES", "https://app.iskra.example, http://localhost:3000,,")
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "https://app.iskra.example")

    settings = Settings(_env_file=None)

    assert settings.jwt_authorized_parties == ("https://app.iskra.example", "http://localhost:3000")
    assert settings.cors_allowed_origins == ("https://app.iskra.example",)


@pytest.mark.parametrize(
    "origin", ["https://*.iskra.example", "*", "https://app.iskra.example/", "null", "app.iskra.example"]
)
def test_cors_origins_must_be_exact_origins_not_patterns(monkeypatch, origin):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"http://localhost:3000,{origin}")

    with pytest.raises(ValidationError, match="CORS_ALLOWED_ORIGINS"):
        Settings(_env_file=None)


def test_cors_origins_may_name_ports_and_ipv6_hosts(monkeypatch):
    monkeypatch.setenv(
        "CORS_ALLOWED_ORIGINS", "http://localhost:3000,https://App.Iskra.example,http://[::1]:3000"
    )

    assert len(Settings(_env_file=None).cors_allowed_origins) == 3


def test_empty_authorized_parties_and_audience_mean_not_checked(monkeypatch):
    monkeypatch.setenv("JWT_AUTHORIZED_PARTIES", "")
    monkeypatch.setenv("JWT_AUDIENCE", "")

    settings = Settings(_env_file=None)

    assert (settings.jwt_authorized_parties, settings.jwt_audience) == ((), "")


def test_identity_defaults_match_the_spec(monkeypatch):
    for name in (
        "JWT_AUDIENCE",
        "JWT_AUTHORIZED_PARTIES",
        "CORS_ALLOWED_ORIGINS",
        "AUTH_MODE",
        "ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)

    settings = Settings(_env_file=None)

    assert settings.jwt_audience == "convex"
    assert settings.jwt_authorized_parties == ()
    assert settings.cors_allowed_origins == ("http://localhost:3000",)
    assert (settings.auth_mode, settings.environment) == ("dev", "development")


def test_the_jwks_url_derives_from_the_issuer_unless_overridden():
    derived = Settings(
        _env_file=None, auth_mode="clerk", clerk_jwt_issuer_domain="https://clerk.iskra.example/"
    )
    overridden = derived.model_copy(update={"clerk_jwks_url": "https://keys.example/jwks"})

    assert derived.jwks_url == "https://clerk.iskra.example/.well-known/jwks.json"
    assert overridden.jwks_url == "https://keys.example/jwks"


def test_a_leeway_over_a_minute_is_refused(monkeypatch):
    monkeypatch.setenv("JWT_LEEWAY_SECONDS", "61")

    with pytest.raises(ValidationError, match="jwt_leeway_seconds"):
        Settings(_env_file=None)


def test_the_events_public_url_is_an_origin_kept_without_its_trailing_slash(monkeypatch):
    monkeypatch.setenv("EVENTS_PUBLIC_URL", "https://events.iskra.example/")

    assert Settings(_env_file=None).events_public_url == "https://events.iskra.example"


@pytest.mark.parametrize(
    "url", ["events.iskra.example", "https://iskra.example/events", "javascript:alert(1)"]
)
def test_an_events_public_url_that_is_not_an_origin_is_refused(monkeypatch, url):
    monkeypatch.setenv("EVENTS_PUBLIC_URL", url)

    with pytest.raises(ValidationError, match="EVENTS_PUBLIC_URL"):
        Settings(_env_file=None)
