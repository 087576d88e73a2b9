from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from alembic import command

from processor.db.admin import alembic_config
from tests.conftest import ThrowawayDatabases


@pytest.fixture
def empty_database(databases: ThrowawayDatabases) -> Iterator[str]:
    url = databases.create("migrations")
    yield url
    databases.drop(url)


def tables(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_downgrade_upgrade_and_no_drift(self, empty_database: str) -> None:
        config = alembic_config(empty_database)
        command.upgrade(config, "head")
        created = tables(empty_database)
        assert {"customers", "accounts", "transactions", "ledger_entries", "audit_log"} <= created
        command.downgrade(config, "base")
        assert tables(empty_database) == set()
        command.upgrade(config, "head")
        assert tables(empty_database) == created
        command.check(config)  # raises if the models and the migrations disagree
