from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from alembic import command

from processor.db.admin import alembic_config
from processor.db.tables import Base
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

    def test_check_constraints_match_the_models(self, empty_database: str) -> None:
        # alembic check does not compare CHECK constraints, so PostgreSQL normalises each model CHECK (added
        # as a probe and rolled back) and the result must equal what the migrations created under that name.
        command.upgrade(alembic_config(empty_database), "head")
        engine = sqlalchemy.create_engine(empty_database)
        definition = sqlalchemy.text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = CAST(:table AS regclass) AND conname = :name"
        )
        expected: dict[str, str] = {}
        try:
            with engine.connect() as connection:
                for table in Base.metadata.sorted_tables:
                    for constraint in table.constraints:
                        if not isinstance(constraint, sqlalchemy.CheckConstraint):
                            continue
                        name = str(constraint.name)  # already expanded by the naming convention
                        with connection.begin():
                            connection.execute(
                                sqlalchemy.text(
                                    f"ALTER TABLE {table.name} ADD CONSTRAINT drift_probe"
                                    f" CHECK ({constraint.sqltext}) NOT VALID"
                                )
                            )
                            probe = connection.scalar(definition, {"table": table.name, "name": "drift_probe"})
                            expected[name] = probe.removesuffix(" NOT VALID")
                            connection.rollback()
                actual = {
                    row.conname: row.definition
                    for row in connection.execute(
                        sqlalchemy.text(
                            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
                            " WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
                        )
                    )
                }
        finally:
            engine.dispose()
        assert actual == expected
