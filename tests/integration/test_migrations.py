from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from processor.db.admin import alembic_config
from processor.db.tables import Base
from tests.conftest import ThrowawayDatabases

ROOT = Path(__file__).resolve().parents[2]
SOME_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/abcbank"


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


class TestWhereTheMigrationsAre:
    def test_the_processor_migrates_without_alembic_ini(self) -> None:
        # An installed copy has no alembic.ini: the scripts come from the package processor.migrations.
        config = alembic_config(SOME_URL)
        assert config.config_file_name is None
        assert Path(ScriptDirectory.from_config(config).dir).name == "migrations"

    def test_the_package_is_the_directory_alembic_ini_names(self) -> None:
        # In the editable install the tests run in, processor.migrations is the top-level migrations/ itself, so
        # `processor db upgrade` and the `alembic` command from the repository root run the same revisions.
        from_package = ScriptDirectory.from_config(alembic_config(SOME_URL))
        from_ini = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))
        assert Path(from_package.dir).resolve() == Path(from_ini.dir).resolve() == ROOT / "migrations"
        assert [script.revision for script in from_package.walk_revisions()] == [
            script.revision for script in from_ini.walk_revisions()
        ]
        assert from_package.get_heads() == from_ini.get_heads()
