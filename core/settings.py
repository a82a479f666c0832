"""One typed settings object, read from the environment once and passed in."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.plans import TIER_ALIASES
from models.ratelimit_classes import ALL_PLANS
from workers.media.limits import MediaLimits

CommaList = Annotated[tuple[str, ...], NoDecode]

# Placeholder secrets for development; production refuses to start with them.
DEV_PLACEHOLDER = "development-only-insecure-secret-change-me"
# Secrets known to be public: this project's placeholder, the compose file's former S3 default, stand-ins.
PUBLIC_SECRETS = frozenset({DEV_PLACEHOLDER, "change-me-in-production", "change-me", "secret", "password"})
# Secrets this service signs with or guards operators' pages with: as long as generate_secret()'s.
MIN_SECRET_LENGTH = 32
# scheme://host[:port], exactly as a browser sends `Origin`.
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


class Settings(BaseSettings):
    """Every knob of the service; names are part of the interface (docs/deploying.md)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/iskra"
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str | None = None
    # Prefixes every Redis key (rate limits, Celery queues): deployments or test runs can share one Redis.
    redis_key_prefix: str = ""
    database_pool_size: int = 10
    # Behind PgBouncer in transaction mode a connection may change server between transactions, so no
    # statement may stay prepared on one: psycopg then never prepares (docs/deploying.md, "Connections").
    database_pgbouncer: bool = False

    data_dir: Path = Field(default=Path(".data"), alias="ISKRA_DATA_DIR")
    storage_backend: Literal["local", "s3"] = "local"
    storage_local_root: Path | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str = "iskra-media"
    s3_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    signing_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    signed_url_ttl_seconds: int = 3600

    auth_mode: Literal["clerk", "dev"] = "dev"
    dev_jwt_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    clerk_jwt_issuer_domain: str | None = None
    clerk_jwks_url: str | None = None
    jwt_audience: str = "convex"
    jwt_authorized_parties: CommaList = ()
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=60)
    jwks_cache_seconds: int = 600
    jwks_refetch_cooldown_seconds: int = 30

    trusted_proxy_count: int = Field(default=0, ge=0)
    rate_limit_fail_open: bool = True
    # RATE_LIMIT_OVERRIDES (JSON): {"default"|plan: {class: {"perMinute"|"perHour"|"perDay": n | null}}};
    # "default" applies to every plan and to `ip`, a plan's own section wins, null removes a window.
    rate_limit_overrides: dict[
        str,
        dict[
            Literal["upload", "standard", "video", "ip"],
            dict[Literal["perMinute", "perHour", "perDay"], Annotated[int, Field(ge=0)] | None],
        ],
    ] = Field(default_factory=dict)
    cors_allowed_origins: CommaList = ("http://localhost:3000",)
    port: int = 8000
    # The live event stream's own process (Procfile `events`).
    events_port: int = 8001
    # Where browsers reach the event stream (the console asks GET /console/config): scheme://host[:port].
    # Unset, it is the API's own host on EVENTS_PORT; behind one proxy for both, the API's public origin.
    events_public_url: str | None = None
    # A `: ping` comment this often keeps proxies from closing an idle stream.
    events_ping_seconds: float = Field(default=15.0, gt=0, le=15)
    # Each user's stream keeps the last N events, each kept an hour after the user's latest (resume window).
    events_kept_per_user: int = Field(default=1000, ge=1000)
    events_kept_seconds: int = Field(default=3600, ge=3600)
    flower_basic_auth: SecretStr | None = None
    # `user:password` that scrapers must send to the API's /metrics; unset, /metrics answers anyone.
    metrics_basic_auth: SecretStr | None = None

    max_image_pixels: int = 100_000_000
    max_dimension: int = 10_000
    max_video_seconds: float = 7200.0
    max_projects_per_user: int = 100
    max_elements_per_project: int = 1000
    max_project_state_bytes: int = 2 * 1024 * 1024
    import_allow_http: bool = False
    # Only for tests that serve the remote file from this machine; never in production.
    import_allow_loopback: bool = False
    import_timeout_seconds: float = 30.0
    stuck_asset_minutes: int = 15
    # Every claim of an asset (first run, retry, redelivery after a crash) is one attempt of this budget.
    max_processing_attempts: int = 6
    abandoned_upload_grace_minutes: int = 60
    # Direct (multipart) uploads left incomplete this long are aborted by maintenance, parts and all.
    multipart_upload_max_age_hours: float = 24.0
    project_thumbnail_debounce_seconds: float = 5.0
    # One user's renders start at least this far apart, however many of their projects are being saved.
    project_thumbnail_user_interval_seconds: float = Field(default=2.0, ge=0)
    # Resident-memory ceiling of one task process; a task that would pass it fails `too-large`.
    worker_memory_limit_mb: int = Field(default=512, ge=64)

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    # Shared by every process of one machine so gunicorn and Celery children report totals.
    prometheus_multiproc_dir: Path | None = None
    # /metrics computes database and queue gauges at most this often per process.
    metrics_cache_seconds: float = 15.0
    # A Celery worker serves its pool's task metrics here, for machines the API's /metrics cannot see.
    worker_metrics_port: int | None = None
    worker_metrics_address: str = "127.0.0.1"

    @field_validator("jwt_authorized_parties", "cors_allowed_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _exact_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        # flask-cors reads an entry holding `*`, `?`, `(`… as a regex matched at its start only, so
        # `https://*.iskra.app` would admit `https://x.iskra.app.evil.example`: only exact origins are taken.
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin (scheme://host[:port])")
        return origins

    @field_validator("events_public_url")
    @classmethod
    def _events_origin(cls, url: str | None) -> str | None:
        if url and not ORIGIN.fullmatch(url.rstrip("/")):
            raise ValueError(f"EVENTS_PUBLIC_URL: {url!r} is not an origin (scheme://host[:port])")
        return url.rstrip("/") if url else None

    @field_validator("rate_limit_overrides")
    @classmethod
    def _known_plans(cls, overrides: dict[str, dict]) -> dict[str, dict]:
        # Users are stored on `free` or `pro`: a section for any other name would be ignored in silence,
        # so the legacy `paid` is read as `pro` (whose own section wins) and anything else is refused.
        merged: dict[str, dict] = {}
        for section, classes in sorted(overrides.items(), key=lambda item: item[0] in TIER_ALIASES.values()):
            plan = section if section == ALL_PLANS else TIER_ALIASES.get(section)
            if plan is None:
                known = ", ".join([ALL_PLANS, *TIER_ALIASES])
                raise ValueError(f"RATE_LIMIT_OVERRIDES: unknown plan {section!r} (expected one of {known})")
            for class_name, windows in classes.items():
                merged.setdefault(plan, {}).setdefault(class_name, {}).update(windows)
        return merged

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.auth_mode == "dev":
            raise ValueError("AUTH_MODE=dev is refused when ENVIRONMENT=production")
        if _weak(self.signing_secret.get_secret_value()):
            raise ValueError(
                f"SIGNING_SECRET must be set in production, to {MIN_SECRET_LENGTH}+ random characters"
            )
        # Issued by the storage provider, so its length is theirs to choose (Backblaze's are 31): only
        # emptiness and published defaults are refused.
        aws_secret = self.aws_secret_access_key
        if aws_secret is not None and aws_secret.get_secret_value().strip() in PUBLIC_SECRETS | {""}:
            raise ValueError("AWS_SECRET_ACCESS_KEY is empty or a published default; refused in production")
        for name, auth in (
            ("FLOWER_BASIC_AUTH", self.flower_basic_auth),
            ("METRICS_BASIC_AUTH", self.metrics_basic_auth),
        ):
            if auth is None:
                continue
            user, _, password = auth.get_secret_value().partition(":")
            if not user or _weak(password):
                raise ValueError(
                    f"{name} must be user:password with a {MIN_SECRET_LENGTH}+ character password"
                )
        if self.import_allow_loopback or self.import_allow_http:
            raise ValueError("IMPORT_ALLOW_LOOPBACK/IMPORT_ALLOW_HTTP are refused in production")
        return self

    @model_validator(mode="after")
    def _clerk_needs_issuer(self) -> Settings:
        if self.auth_mode == "clerk" and not self.clerk_jwt_issuer_domain:
            raise ValueError("AUTH_MODE=clerk needs CLERK_JWT_ISSUER_DOMAIN")
        return self

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def jwks_url(self) -> str:
        if self.clerk_jwks_url:
            return self.clerk_jwks_url
        return f"{(self.clerk_jwt_issuer_domain or '').rstrip('/')}/.well-known/jwks.json"

    @property
    def local_storage_root(self) -> Path:
        return self.storage_local_root or self.data_dir / "media"


def _weak(secret: str) -> bool:
    return len(secret) < MIN_SECRET_LENGTH or secret in PUBLIC_SECRETS


def generate_secret() -> str:
    """A fresh random secret for development stacks."""
    return secrets.token_urlsafe(32)


MIB = 1024 * 1024
# Address space ffmpeg maps without making it resident (codec libraries, thread pools): it does not even
# start under 384 MiB, while a 4K poster frame peaks at ~80 MiB resident. Its RLIMIT_AS is the task
# process ceiling plus this.
FFMPEG_MAPPED_MB = 1024


def media_limits(settings: Settings) -> MediaLimits:
    """The media bounds this deployment configures, as the plain values media functions take."""
    return MediaLimits(
        max_dimension=settings.max_dimension,
        max_pixels=settings.max_image_pixels,
        max_video_seconds=settings.max_video_seconds,
        child_memory_bytes=(settings.worker_memory_limit_mb + FFMPEG_MAPPED_MB) * MIB,
    )
