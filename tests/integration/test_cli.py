"""The operator CLI (docs/architecture.md): JSON shapes, exit codes, and one clear stderr line on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic.script import ScriptDirectory
from click.testing import Result
from sqlalchemy.engine import make_url

from processor.cli import cli
from processor.db.admin import alembic_config
from processor.db.engine import get_engine
from processor.services.accounts import get_account
from processor.services.customers import get_customer
from tests.builders import UowFactory, make_account, make_customer, pay, tamper
from tests.clis import error_line, invoke, invoke_json, mistype
from tests.conftest import SERVER_URL, ThrowawayDatabases
from tests.requests import deposit, transfer, withdrawal

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("processor"))
UNKNOWN_CUSTOMER = "99999999"
ACCOUNT_KEYS = {"number", "customer", "type", "status", "currency", "balance", "overdraft_limit", "reward_points"}


def run(*args: str) -> Result:
    return invoke(cli, *args)


def run_json(*args: str) -> Any:
    return invoke_json(cli, *args)


def run_script(database_url: str, *args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [CONSOLE_SCRIPT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


class TestCustomerRegister:
    def test_prints_the_new_customer_as_json(self, make_uow: UowFactory) -> None:
        data = run_json("customer", "register", "--name", "Grace Hopper", "--email", "grace@example.com")

        assert set(data) == {"number", "name", "email"}
        assert isinstance(data["number"], int)
        assert data["name"] == "Grace Hopper"
        assert data["email"] == "grace@example.com"
        found, _ = get_customer(make_uow(), data["number"])
        assert found.email == "grace@example.com"

    def test_duplicate_email_in_another_case_is_refused(self, make_uow: UowFactory) -> None:
        run_json("customer", "register", "--name", "Grace Hopper", "--email", "grace@example.com")

        result = run("customer", "register", "--name", "Someone Else", "--email", "GRACE@Example.COM", "--json")

        assert result.exit_code == 1
        assert "already registered" in error_line(result.stderr)
        assert result.stdout == ""


class TestCustomerShow:
    def test_shows_the_customer_with_their_accounts(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow, name="Ada Lovelace")
        first = make_account(make_uow, customer=owner, balance="12.50")
        second = make_account(make_uow, type="savings", customer=owner)

        data = run_json("customer", "show", str(owner.number))

        assert data["number"] == owner.number
        assert data["name"] == "Ada Lovelace"
        assert data["email"] == owner.email
        by_number = {a["number"]: a for a in data["accounts"]}
        assert set(by_number) == {first.number, second.number}
        assert set(by_number[first.number]) == ACCOUNT_KEYS
        assert by_number[first.number]["balance"] == "12.50"
        assert by_number[second.number]["type"] == "savings"

    def test_unknown_customer_fails_with_one_line(self, make_uow: UowFactory) -> None:
        result = run("customer", "show", UNKNOWN_CUSTOMER, "--json")

        assert result.exit_code == 1
        assert UNKNOWN_CUSTOMER in error_line(result.stderr)


class TestAccountOpen:
    def test_prints_the_new_account_as_json_with_defaults(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow)

        data = run_json("account", "open", "--customer", str(owner.number), "--type", "standard")

        assert set(data) == ACCOUNT_KEYS
        assert data["customer"] == owner.number
        assert data["type"] == "standard"
        assert data["status"] == "active"
        assert data["currency"] == "GBP"
        assert data["balance"] == "0.00"
        assert data["overdraft_limit"] == "0.00"
        assert data["reward_points"] == 0
        assert get_account(make_uow(), data["number"]).customer == owner.number

    def test_standard_account_with_currency_and_overdraft_limit(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow)

        data = run_json(
            "account",
            "open",
            "--customer",
            str(owner.number),
            "--type",
            "standard",
            "--currency",
            "EUR",
            "--overdraft-limit",
            "250",
        )

        assert data["currency"] == "EUR"
        assert data["overdraft_limit"] == "250.00"

    @pytest.mark.parametrize("account_type", ["savings", "reward"])
    def test_opens_each_customer_account_type(self, make_uow: UowFactory, account_type: str) -> None:
        owner = make_customer(make_uow)

        data = run_json("account", "open", "--customer", str(owner.number), "--type", account_type)

        assert data["type"] == account_type
        assert data["reward_points"] == 0

    def test_overdraft_limit_on_savings_is_refused(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow)

        result = run(
            "account",
            "open",
            "--customer",
            str(owner.number),
            "--type",
            "savings",
            "--overdraft-limit",
            "100",
            "--json",
        )

        assert result.exit_code == 1
        assert "overdraft_limit" in error_line(result.stderr)
        assert get_customer(make_uow(), owner.number)[1] == []

    @pytest.mark.parametrize("limit", ["1.234", "abc", "-5"])
    def test_malformed_overdraft_limit_names_the_field(self, make_uow: UowFactory, limit: str) -> None:
        owner = make_customer(make_uow)

        result = run(
            "account", "open", "--customer", str(owner.number), "--type", "standard", "--overdraft-limit", limit
        )

        assert result.exit_code == 1
        assert error_line(result.stderr).startswith("error: overdraft_limit: ")

    def test_unknown_customer_is_refused(self, make_uow: UowFactory) -> None:
        result = run("account", "open", "--customer", UNKNOWN_CUSTOMER, "--type", "standard", "--json")

        assert result.exit_code == 1
        assert UNKNOWN_CUSTOMER in error_line(result.stderr)

    def test_unknown_type_is_a_usage_error(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow)

        result = run("account", "open", "--customer", str(owner.number), "--type", "bogus", "--json")

        assert result.exit_code == 2
        assert "--type" in result.stderr
        assert get_customer(make_uow(), owner.number)[1] == []


class TestAccountShow:
    def test_shows_balance_after_payments_as_a_decimal_string(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        (outcome,) = pay(make_uow, deposit(account.number, "100.10"))
        assert outcome.status == "applied"

        data = run_json("account", "show", account.number)

        assert set(data) == ACCOUNT_KEYS
        assert data["number"] == account.number
        assert data["customer"] == account.customer
        assert data["balance"] == "100.10"

    def test_reward_points_show_after_a_deposit(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, type="reward", balance="35.00")

        data = run_json("account", "show", account.number)

        assert data["balance"] == "35.00"
        assert data["reward_points"] == 3

    def test_mistyped_number_is_caught_by_the_check_digit(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = run("account", "show", mistype(account.number), "--json")

        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert "check digit" in line
        assert "mistyped" in line

    def test_not_a_number_is_refused(self, make_uow: UowFactory) -> None:
        result = run("account", "show", "abc", "--json")

        assert result.exit_code == 1
        assert "'abc' is not an account number" in error_line(result.stderr)


class TestAccountSetStatus:
    def test_new_status_shows_in_account_show(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        changed = run_json(
            "account", "set-status", account.number, "frozen", "--reason", "suspected fraud", "--actor", "alice"
        )
        shown = run_json("account", "show", account.number)

        assert changed["status"] == "frozen"
        assert changed["number"] == account.number
        assert shown["status"] == "frozen"

    def test_change_is_recorded_in_the_audit_log(self, make_uow: UowFactory, database_url: str) -> None:
        account = make_account(make_uow)

        run_json("account", "set-status", account.number, "dormant", "--reason", "no use in a year", "--actor", "alice")

        with get_engine(database_url).connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT actor, details FROM audit_log WHERE action = 'account.status_changed' AND entity = :n"
                ),
                {"n": account.number},
            ).all()
        assert len(rows) == 1
        actor, details = rows[0]
        assert actor == "alice"
        assert details["from"] == "active"
        assert details["to"] == "dormant"
        assert details["reason"] == "no use in a year"

    def test_unknown_status_fails_with_one_line(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = run("account", "set-status", account.number, "sleeping", "--reason", "test", "--json")

        assert result.exit_code == 1
        assert "'sleeping' is not a status" in error_line(result.stderr)
        assert get_account(make_uow(), account.number).status == "active"

    def test_closing_an_account_with_money_is_refused(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="5.00")

        result = run("account", "set-status", account.number, "closed", "--reason", "customer left", "--json")

        assert result.exit_code == 1
        assert "zero balance" in error_line(result.stderr)
        assert get_account(make_uow(), account.number).status == "active"

    def test_missing_reason_is_a_usage_error(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = run("account", "set-status", account.number, "frozen", "--json")

        assert result.exit_code == 2
        assert "--reason" in result.stderr
        assert get_account(make_uow(), account.number).status == "active"


class TestAccountStatement:
    def test_lists_entries_newest_last_with_signed_amounts_and_balance_after(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        other = make_account(make_uow)
        outcomes = [
            *pay(make_uow, deposit(account.number, "100.00", reference="stmt-dep")),
            *pay(make_uow, withdrawal(account.number, "30.25", reference="stmt-wd")),
            *pay(make_uow, transfer(account.number, other.number, "20.00", reference="stmt-tr")),
        ]
        assert [o.status for o in outcomes] == ["applied"] * 3

        entries = run_json("account", "statement", account.number)["items"]

        assert [(e["reference"], e["amount"], e["balance_after"]) for e in entries] == [
            ("stmt-dep", "100.00", "100.00"),
            ("stmt-wd", "-30.25", "69.75"),
            ("stmt-tr", "-20.00", "49.75"),
        ]
        assert all(isinstance(e["at"], str) for e in entries)

    def test_destination_of_a_transfer_sees_a_positive_entry(self, make_uow: UowFactory) -> None:
        source = make_account(make_uow, balance="50.00")
        destination = make_account(make_uow)
        pay(make_uow, transfer(source.number, destination.number, "20.00", reference="stmt-in"))

        entries = run_json("account", "statement", destination.number)["items"]

        assert [(e["reference"], e["amount"], e["balance_after"]) for e in entries] == [("stmt-in", "20.00", "20.00")]


class TestVerify:
    def test_consistent_ledger_is_ok(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="80.00")
        other = make_account(make_uow)
        outcomes = pay(make_uow, transfer(account.number, other.number, "30.00"), withdrawal(other.number, "10.00"))
        assert [o.status for o in outcomes] == ["applied", "applied"]

        data = run_json("verify")

        assert data == {"ok": True, "violations": []}

    def test_corrupted_balance_is_a_violation(self, make_uow: UowFactory, database_url: str) -> None:
        account = make_account(make_uow, balance="50.00")
        # Past the database's ledger guards (migration 0004), which would refuse this balance.
        tamper(make_uow, "UPDATE accounts SET balance = balance + 1 WHERE number = :n", n=account.number)

        result = run("verify", "--json")

        assert result.exit_code == 1
        data = json.loads(result.stdout)
        assert data["ok"] is False
        assert {"check": "balance_equals_entries", "number": account.number} in [
            {"check": v["check"], "number": v.get("number")} for v in data["violations"]
        ]
        assert "violation" in error_line(result.stderr)


class TestConsoleScript:
    """The installed `processor` script, run as a user runs it."""

    def test_register_prints_json_on_stdout(self, make_uow: UowFactory, database_url: str, tmp_path: Path) -> None:
        completed = run_script(
            database_url,
            "customer",
            "register",
            "--name",
            "Alan Turing",
            "--email",
            "alan@example.com",
            "--json",
            cwd=str(tmp_path),
        )

        assert completed.returncode == 0, completed.stderr
        data = json.loads(completed.stdout)
        assert data["email"] == "alan@example.com"
        assert get_customer(make_uow(), data["number"])[0].name == "Alan Turing"

    def test_user_mistake_is_one_line_without_traceback(
        self, make_uow: UowFactory, database_url: str, tmp_path: Path
    ) -> None:
        owner = make_customer(make_uow)

        completed = run_script(
            database_url,
            "account",
            "open",
            "--customer",
            str(owner.number),
            "--type",
            "savings",
            "--overdraft-limit",
            "100",
            "--json",
            cwd=str(tmp_path),
        )

        assert completed.returncode == 1
        assert "overdraft_limit" in error_line(completed.stderr)
        assert completed.stdout == ""

    def test_missing_database_is_one_line_without_traceback(self, database_url: str, tmp_path: Path) -> None:
        missing = make_url(database_url).set(database="abcbank_no_such_db").render_as_string(hide_password=False)

        completed = run_script(missing, "verify", "--json", cwd=str(tmp_path))

        assert completed.returncode == 69  # EX_UNAVAILABLE: the database cannot be used, whatever the request
        line = error_line(completed.stderr)
        assert "abcbank_no_such_db" in line
        assert "DATABASE_URL" in line

    @pytest.mark.parametrize("bad_url", ["not-a-url", "mysql://postgres@127.0.0.1/abcbank"])
    def test_unusable_database_url_is_one_line_without_traceback(self, bad_url: str, tmp_path: Path) -> None:
        completed = run_script(bad_url, "verify", "--json", cwd=str(tmp_path))

        assert completed.returncode == 1
        assert "DATABASE_URL" in error_line(completed.stderr)


class TestDb:
    def test_create_then_upgrade_a_new_database(self, databases: ThrowawayDatabases, tmp_path: Path) -> None:
        url = make_url(SERVER_URL).set(database=f"abcbank_test_cli_{uuid.uuid4().hex[:8]}")
        rendered = url.render_as_string(hide_password=False)
        head = ScriptDirectory.from_config(alembic_config(rendered)).get_current_head()
        try:
            created = run_script(rendered, "db", "create", "--json", cwd=str(tmp_path))
            again = run_script(rendered, "db", "create", "--json", cwd=str(tmp_path))
            upgraded = run_script(rendered, "db", "upgrade", "--json", cwd=str(tmp_path))
        finally:
            databases.drop(rendered)
        assert json.loads(created.stdout) == {"database": url.database, "created": True}
        assert json.loads(again.stdout) == {"database": url.database, "created": False}
        assert upgraded.returncode == 0, upgraded.stderr
        # What it grants the roles, when they exist, is tests/integration/test_roles.py.
        assert json.loads(upgraded.stdout)["revision"] == head
