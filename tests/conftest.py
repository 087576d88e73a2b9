"""Each test run gets its own PostgreSQL database, built by Alembic, and its own Redis database; both go at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
import sqlalchemy
from sqlalchemy.engine import make_url

from processor.config import get_settings
from processor.db import admin
from processor.db.engine import get_engine, get_session_factory
from processor.db.tables import Base
from processor.db.uow import UnitOfWork
from tests.web import Api

SERVER_URL = os.environ.get("TEST_DATABASE_SERVER_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER_URL", "redis://127.0.0.1:6379")


class ThrowawayDatabases:
    """Databases named for this run on the test server, dropped when done."""

    def create(self, label: str) -> str:
        url = make_url(SERVER_URL).set(database=f"abcbank_test_{label}_{uuid.uuid4().hex[:8]}")
        rendered = url.render_as_string(hide_password=False)
        admin.create_database(rendered)
        return rendered

    def drop(self, url: str) -> None:
        get_engine(url).dispose()
        admin.drop_database(url)


@contextmanager
def setting(name: str, value: str) -> Iterator[None]:
    """An environment variable set for the settings while the block runs, then restored."""
    previous = os.environ.get(name)
    os.environ[name] = value
    get_settings.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
        get_settings.cache_clear()


@pytest.fixture(scope="session")
def databases() -> ThrowawayDatabases:
    return ThrowawayDatabases()


@pytest.fixture(scope="session")
def database_url(databases: ThrowawayDatabases) -> Iterator[str]:
    url = databases.create("run")
    admin.upgrade(url)
    with setting("DATABASE_URL", url):
        yield url
    databases.drop(url)


def empty_tables(url: str) -> None:
    """Empty every table the models know, so a new table cannot be forgotten here."""
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with get_engine(url).begin() as connection:
        connection.execute(sqlalchemy.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def make_uow(database_url: str) -> Iterator[Callable[[], UnitOfWork]]:
    """A fresh unit of work on the test database, emptied after the test (threads commit for real)."""
    factory = get_session_factory(database_url)
    yield lambda: UnitOfWork(factory)
    empty_tables(database_url)


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    """A Redis database number no one else is using, claimed for this run and flushed at the end.

    Database 0 is the default broker and 15 is the demo's, so tests take one of 1 to 14.
    """
    claim = f"abcbank-test-run-{uuid.uuid4().hex}"
    for number in range(1, 15):
        client = redis.Redis.from_url(f"{REDIS_SERVER}/{number}")
        # The claim key makes the database non-empty, so another run skips it.
        if client.dbsize() == 0 and client.set("abcbank:test-claim", claim, nx=True, ex=3600):
            break
        client.close()
    else:
        pytest.fail("no free Redis database among 1 to 14 for the tests")
    url = f"{REDIS_SERVER}/{number}"
    # Celery prefers CELERY_BROKER_URL to the broker an app is given: set it, so nothing reaches another broker.
    with setting("CELERY_BROKER_URL", url):
        yield url
    client.flushdb()
    client.close()


@pytest.fixture
def api(make_uow: Callable[[], UnitOfWork], database_url: str, broker_url: str) -> Api:
    """The HTTP API through Flask's test client, with a real token; it enqueues on this run's Redis database."""
    return Api(make_uow, database_url)
