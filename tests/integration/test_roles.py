"""The database roles (processor/db/roles.py): `processor db roles` and `db upgrade`, and what each role is refused.

Each role is tried against the real server: what its program needs works, and what it must not do fails with
insufficient_privilege (42501), so a grant too wide or too narrow shows here.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import sqlalchemy
from alembic import command
from sqlalchemy.exc import DBAPIError

from processor.cli import cli
from processor.db.admin import alembic_config
from processor.db.engine import get_engine
from processor.db.roles import SEQUENCE_GRANTS, TABLE_GRANTS, Kind
from processor.db.tables import Base
from processor.domain.book import Policy
from processor.domain.held import HeldMessage, HeldReason
from processor.domain.outcomes import OutcomeStatus
from processor.services.accounts import change_status, open_account
from processor.services.customers import register_customer
from processor.services.held import hold_message, list_held
from processor.services.payments import apply_payments, get_outcome
from processor.services.verify import verify_ledger
from tests.clis import error_line, invoke, invoke_json
from tests.conftest import SERVER_URL, ThrowawayDatabases
from tests.requests import deposit, transfer, unique
from tests.roles import (
    PASSWORD_VARIABLES,
    ROLE_SETTINGS,
    RoledDatabase,
    drop_roles,
    fresh_role_names,
    roled_database,
    settings,
)

INSUFFICIENT_PRIVILEGE = "42501"


@pytest.fixture(scope="module")
def roled(databases: ThrowawayDatabases) -> Iterator[RoledDatabase]:
    with roled_database(databases) as database:
        yield database


def refused(database: RoledDatabase, kind: Kind, statement: str) -> bool:
    """Whether the role is refused the statement for want of a privilege (nothing it does is kept)."""
    with get_engine(database.url(kind)).connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(sqlalchemy.text(statement))
    return getattr(caught.value.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE


def acl(database: RoledDatabase) -> list[Any]:
    """Every privilege on the schema's tables, columns and sequences, and on the database, as the server has them."""
    with get_engine(database.admin_url).connect() as connection:
        return list(
            connection.execute(
                sqlalchemy.text(
                    """
                    SELECT c.relname, c.relacl::text, pg_get_userbyid(c.relowner),
                           ARRAY(SELECT a.attname || '=' || a.attacl::text FROM pg_attribute a
                                 WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL ORDER BY a.attname)
                    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'S')
                    UNION ALL
                    SELECT datname, datacl::text, pg_get_userbyid(datdba), ARRAY[]::text[]
                    FROM pg_database WHERE datname = current_database()
                    ORDER BY 1"""
                )
            )
        )


def a_bank(database: RoledDatabase) -> tuple[str, str]:
    """Two funded accounts, opened by the operator role and funded by the worker role."""
    operator = partial(database.uow, Kind.OPERATOR)
    customer = register_customer(operator(), "Grace Hopper", f"{unique('grace')}@example.com", actor="test")
    first = open_account(operator(), customer.number, "standard", "GBP", "test", ["GBP"], None)
    second = open_account(operator(), customer.number, "savings", "GBP", "test", ["GBP"], None)
    (outcome,) = apply_payments(database.uow(Kind.WORKER), [deposit(first.number, "100.00")], Policy())
    assert outcome.status is OutcomeStatus.APPLIED, outcome
    return first.number, second.number


class TestWhatEachRoleNeeds:
    def test_the_worker_applies_payments_and_holds_messages(self, roled: RoledDatabase) -> None:
        first, second = a_bank(roled)
        worker = partial(roled.uow, Kind.WORKER)
        paid = transfer(first, second, "25.00")

        (outcome,) = apply_payments(worker(), [paid], Policy())
        unreadable = HeldMessage(HeldReason.UNREADABLE, "payments.deposit", unique("task"), None, {}, "no reference")
        held = hold_message(worker(), unreadable)

        assert outcome.status is OutcomeStatus.APPLIED, outcome
        assert held in [h.id for h in list_held(roled.uow(Kind.OPERATOR), 10)]

    def test_the_operator_changes_status_and_verifies(self, roled: RoledDatabase) -> None:
        first, _ = a_bank(roled)

        changed = change_status(roled.uow(Kind.OPERATOR), first, "frozen", reason="case 1", actor="test")

        assert changed.status == "frozen"
        assert verify_ledger(roled.uow(Kind.OPERATOR)) == []

    def test_the_reader_reads_outcomes(self, roled: RoledDatabase) -> None:
        first, second = a_bank(roled)
        paid = transfer(first, second, "1.00")
        apply_payments(roled.uow(Kind.WORKER), [paid], Policy())

        assert get_outcome(roled.uow(Kind.READER), paid.reference).status is OutcomeStatus.APPLIED


class TestWhatEachRoleIsRefused:
    def test_a_cli_run_as_a_role_that_may_not_is_one_line(self, roled: RoledDatabase) -> None:
        with settings({**roled.role_env(), "DATABASE_URL": roled.url(Kind.READER)}):
            result = invoke(cli, "customer", "register", "--name", "Mallory", "--email", "mallory@example.com")

        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert line.startswith(f"error: the database role {roled.names.of(Kind.READER)} may not do this (")
        assert roled.passwords[Kind.READER] not in result.stderr

    @pytest.mark.parametrize(
        "statement",
        [
            "DELETE FROM ledger_entries",
            "UPDATE ledger_entries SET amount = amount * 2",
            "TRUNCATE ledger_entries",
            "UPDATE transactions SET status = 'rejected', reason = 'insufficient_funds'",
            "DELETE FROM transactions",
            "UPDATE accounts SET status = 'active'",
            "UPDATE accounts SET overdraft_limit = 1000000",
            "INSERT INTO accounts (number, type, currency) VALUES ('999999999', 'settlement', 'GBP')",
            "DELETE FROM accounts",
            "INSERT INTO customers (name, email) VALUES ('Mallory', 'mallory@example.com')",
            "SELECT name, email FROM customers",
            "INSERT INTO audit_log (actor, action, entity_type, entity) VALUES ('x', 'y', 'z', 'w')",
            "DELETE FROM held_messages",
            "DELETE FROM alembic_version",
            "CREATE TABLE stolen (id int)",
            "CREATE TEMPORARY TABLE stolen (id int)",
            "CREATE SCHEMA stolen",
            "SELECT nextval('account_number_seq')",
            "SET session_replication_role = replica",  # would switch the ledger's triggers off
        ],
    )
    def test_the_worker(self, roled: RoledDatabase, statement: str) -> None:
        assert refused(roled, Kind.WORKER, statement)

    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after) VALUES (1, 1, 1, 1)",
            "INSERT INTO transactions (reference, payload, fingerprint, status) VALUES ('r', '{}', 'f', 'applied')",
            "UPDATE accounts SET balance = balance + 1000000",
            "DELETE FROM audit_log",
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM customers",
            "CREATE TABLE stolen (id int)",
            "SET session_replication_role = replica",
        ],
    )
    def test_the_operator(self, roled: RoledDatabase, statement: str) -> None:
        assert refused(roled, Kind.OPERATOR, statement)

    @pytest.mark.parametrize("table", sorted(TABLE_GRANTS[Kind.READER]))
    def test_the_reader_writes_nothing(self, roled: RoledDatabase, table: str) -> None:
        assert refused(roled, Kind.READER, f"INSERT INTO {table} DEFAULT VALUES")
        assert refused(roled, Kind.READER, f"DELETE FROM {table}")

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE transactions SET status = 'applied'",
            "SELECT * FROM ledger_entries",
            "SELECT * FROM held_messages",
            "CREATE TABLE stolen (id int)",
            "CREATE TEMPORARY TABLE stolen (id int)",
        ],
    )
    def test_the_reader(self, roled: RoledDatabase, statement: str) -> None:
        assert refused(roled, Kind.READER, statement)


class TestGrantsMap:
    def test_every_table_is_decided_for_every_role(self) -> None:
        tables = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}
        for kind, grants in TABLE_GRANTS.items():
            assert set(grants) == tables, f"{kind}: say in TABLE_GRANTS what it may do with {tables ^ set(grants)}"

    def test_every_sequence_granted_exists(self, roled: RoledDatabase) -> None:
        with get_engine(roled.admin_url).connect() as connection:
            sequences = set(connection.scalars(sqlalchemy.text("SELECT sequencename FROM pg_sequences")))
        for kind, granted in SEQUENCE_GRANTS.items():
            assert set(granted) <= sequences, f"{kind}: no such sequence {set(granted) - sequences}"


class TestDbRolesCommand:
    def test_running_it_again_changes_nothing(self, roled: RoledDatabase) -> None:
        before = acl(roled)

        with settings({**roled.role_env(), "DATABASE_URL": roled.admin_url}):
            data = invoke_json(cli, "db", "roles")

        assert [(r["role"], r["created"], r["password_set"]) for r in data["roles"]] == [
            (roled.names.of(kind), False, False) for kind in Kind
        ]
        assert acl(roled) == before

    def test_the_owner_owns_every_object_and_the_database(self, roled: RoledDatabase) -> None:
        owners = {owner for _, _, owner, _ in acl(roled)}

        assert owners == {roled.names.owner}

    def test_a_password_is_stored_as_scram_and_never_printed(self, roled: RoledDatabase) -> None:
        password = "correct horse battery staple"
        with settings({**roled.role_env(), "DATABASE_URL": roled.admin_url, PASSWORD_VARIABLES[Kind.READER]: password}):
            result = invoke(cli, "db", "roles")
        with get_engine(roled.admin_url).connect() as connection:
            stored = connection.scalar(
                sqlalchemy.text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"), {"n": roled.names.reader}
            )

        assert result.exit_code == 0, result.stderr
        assert password not in result.output
        assert f"role {roled.names.reader} (reader): updated, password set" in result.stdout
        assert str(stored).startswith("SCRAM-SHA-256$")

    def test_a_new_role_without_a_password_is_refused_and_nothing_is_made(self, roled: RoledDatabase) -> None:
        names = fresh_role_names()
        env = {ROLE_SETTINGS[k]: names.of(k) for k in Kind}
        try:
            with settings({**env, "DATABASE_URL": roled.admin_url}):
                result = invoke(cli, "db", "roles")
            with get_engine(roled.admin_url).connect() as connection:
                made = connection.scalar(
                    sqlalchemy.text("SELECT count(*) FROM pg_roles WHERE rolname LIKE :p"),
                    {"p": f"{names.owner[:-5]}%"},
                )
        finally:
            drop_roles(names)

        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert f"{PASSWORD_VARIABLES[Kind.WORKER]} (for {names.worker})" in line
        assert made == 0

    def test_an_empty_password_is_refused(self, roled: RoledDatabase) -> None:
        with settings({**roled.role_env(), "DATABASE_URL": roled.admin_url, PASSWORD_VARIABLES[Kind.WORKER]: ""}):
            result = invoke(cli, "db", "roles")

        assert result.exit_code == 1
        assert "ABCBANK_WORKER_PASSWORD is set but empty" in error_line(result.stderr)

    def test_a_password_env_that_is_not_a_variable_name_is_a_usage_error(self, roled: RoledDatabase) -> None:
        with settings({**roled.role_env(), "DATABASE_URL": roled.admin_url}):
            result = invoke(cli, "db", "roles", "--worker-password-env", "hunter2 hunter3")

        assert result.exit_code == 2
        assert "not an environment variable name" in result.stderr

    def test_a_superuser_is_never_made_a_processor_role(self, roled: RoledDatabase) -> None:
        with settings({**roled.role_env(), "DATABASE_URL": roled.admin_url, "PROCESSOR_DB_WORKER_ROLE": "postgres"}):
            result = invoke(cli, "db", "roles")
        with get_engine(SERVER_URL).connect() as connection:
            still = connection.scalar(sqlalchemy.text("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'"))

        assert result.exit_code == 1
        assert "postgres is a superuser" in error_line(result.stderr)
        assert still is True

    @pytest.mark.parametrize("name", ["Robert'); DROP TABLE accounts; --", "pg_monitor", "9lives"])
    def test_a_malformed_role_name_is_a_configuration_error(self, roled: RoledDatabase, name: str) -> None:
        with settings({"DATABASE_URL": roled.admin_url, "PROCESSOR_DB_READER_ROLE": name}):
            result = invoke(cli, "db", "roles")

        assert result.exit_code == 1
        assert "PROCESSOR_DB_READER_ROLE" in error_line(result.stderr)


class TestUpgradeKeepsTheGrants:
    def test_tables_a_migration_makes_again_are_granted_again(self, roled: RoledDatabase) -> None:
        # As a later migration would, the owner drops every table and makes it again, without any grant.
        command.downgrade(alembic_config(roled.url(Kind.OWNER)), "base")
        with settings({**roled.role_env(), "DATABASE_URL": roled.url(Kind.OWNER)}):
            data = invoke_json(cli, "db", "upgrade")

        assert data["granted"] == [roled.names.worker, roled.names.operator, roled.names.reader]
        a_bank(roled)  # the operator and the worker can use the new tables
        assert refused(roled, Kind.WORKER, "DELETE FROM ledger_entries")

    def test_without_the_roles_upgrade_grants_to_none(self, database_url: str) -> None:
        names = fresh_role_names()  # never made
        env = {ROLE_SETTINGS[k]: names.of(k) for k in Kind}
        with settings({**env, "DATABASE_URL": database_url}):
            data = invoke_json(cli, "db", "upgrade")

        assert data["granted"] == []
