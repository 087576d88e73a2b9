"""Each test run gets its own PostgreSQL database, built by Alembic and dropped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from processor.config import get_settings
from processor.db.engine import get_engine, get_session_factory
from processor.db.uow import UnitOfWork

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_URL = os.environ.get("TEST_DATABASE_SERVER_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def alembic_config(url: str) -> Config:
    config = Config(os.path.join(ROOT, "alembic.ini"))
    config.set_main_option("script_location", os.path.join(ROOT, "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    return config


class ThrowawayDatabases:
    """Creates and drops throwaway databases on the local server."""

    def __init__(self) -> None:
        self.admin = sqlalchemy.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")

    def create(self, label: str) -> str:
        name = f"abcbank_test_{label}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        return make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        get_engine(url).dispose()
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def databases() -> Iterator[ThrowawayDatabases]:
    manager = ThrowawayDatabases()
    yield manager
    manager.admin.dispose()


@pytest.fixture(scope="session")
def database_url(databases: ThrowawayDatabases) -> Iterator[str]:
    url = databases.create("run")
    command.upgrade(alembic_config(url), "head")
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


TABLES = "audit_log, ledger_entries, transaction_conflicts, transactions, accounts, customers"


@pytest.fixture
def make_uow(database_url: str) -> Iterator[Callable[[], UnitOfWork]]:
    """A fresh unit of work on the test database, emptied after the test (threads commit for real)."""
    factory = get_session_factory(database_url)
    yield lambda: UnitOfWork(factory)
    with get_engine(database_url).begin() as connection:
        connection.execute(sqlalchemy.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
