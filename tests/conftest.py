"""Shared fixtures: a fresh PostgreSQL database per run, rolled-back sessions per test, real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from core import taskqueue
from core.settings import Settings
from models import migrate
from tests.jwks_server import JwksServer
from web.app import create_app
from web.auth import Authenticator, make_dev_token
from web.services import Services

SERVER_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]


def _admin(sql: str) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as connection:
        connection.execute(sql)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this run's own, migrated to head, dropped afterwards."""
    name = f"iskra_test_{RUN_ID}"
    _admin(f'CREATE DATABASE "{name}"')
    base = SERVER_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    url = f"{base}/{name}"
    migrate.upgrade(url)
    yield url
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("data")
    return Settings(
        _env_file=None,
        environment="development",
        database_url=database_url,
        redis_url=REDIS_URL,
        redis_key_prefix=f"iskra-test-{RUN_ID}:",
        ISKRA_DATA_DIR=data_dir,
        storage_backend="local",
        auth_mode="dev",
        dev_jwt_secret="test-secret-that-is-long-enough-for-hs256",
        signing_secret="test-signing-secret-long-enough-for-hmac",
        log_format="json",
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """One connection per test inside a transaction that is rolled back at the end."""
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions whose commits become savepoints of the test's transaction."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def redis_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


def build_services(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Services:
    return Services(
        settings=settings,
        engine=engine,
        sessions=sessions,
        celery=taskqueue.make_client(settings),
        authenticator=Authenticator(settings),
        redis=redis.Redis.from_url(settings.redis_url),
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Flask:
    """The API bound to the test's rolled-back connection."""
    return create_app(settings, build_services(settings, engine, sessions))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def auth_header(settings: Settings) -> Callable[..., dict[str, str]]:
    """`Authorization` headers for a development token of any user id."""

    def header(user_id: str | None = None, email: str = "") -> dict[str, str]:
        token = make_dev_token(settings, user_id or f"user_{uuid.uuid4().hex[:12]}", email)
        return {"Authorization": f"Bearer {token}"}

    return header


def _committed_app(settings: Settings, engine: Engine) -> Iterator[Flask]:
    yield create_app(settings, build_services(settings, engine, sessionmaker(engine, expire_on_commit=False)))
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE users, assets, projects, worker_pings, pending_deletions CASCADE"))


@pytest.fixture
def committed_app(settings: Settings, engine: Engine) -> Iterator[Flask]:
    """The API with real, committing transactions (for races); its rows are removed afterwards."""
    yield from _committed_app(settings, engine)


@pytest.fixture
def broker_app(broker_settings: Settings, engine: Engine) -> Iterator[Flask]:
    """As `committed_app`, sending its tasks through each broker in turn."""
    yield from _committed_app(broker_settings, engine)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    """A live JWKS endpoint on 127.0.0.1 (random port) serving the key `key-1`."""
    server = JwksServer()
    server.publish("key-1")
    yield server
    server.stop()


pytest_plugins = ["tests.s3server", "tests.redis_server", "tests.brokers"]


@pytest.fixture
def worker_context(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> Iterator[object]:
    """A worker context on the test's rolled-back connection, installed for task functions called directly."""
    from models.storage import make_storage
    from workers import context

    previous = context._current
    yield context.install(
        context.WorkerContext(
            settings=settings, engine=engine, sessions=sessions, storage=make_storage(settings)
        )
    )
    context._current = previous
