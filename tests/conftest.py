"""Each test run gets its own PostgreSQL database, built by Alembic and dropped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from processor.config import get_settings
from processor.db import admin
from processor.db.engine import get_engine, get_session_factory
from processor.db.tables import Base
from processor.db.uow import UnitOfWork

SERVER_URL = os.environ.get("TEST_DATABASE_SERVER_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


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


@pytest.fixture(scope="session")
def databases() -> ThrowawayDatabases:
    return ThrowawayDatabases()


@pytest.fixture(scope="session")
def database_url(databases: ThrowawayDatabases) -> Iterator[str]:
    url = databases.create("run")
    admin.upgrade(url)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    yield url
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    get_settings.cache_clear()
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
