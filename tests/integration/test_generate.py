"""`submit generate`: sample payment files whose deliberate bad rows are exactly what `submit file` refuses."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from processor.db import admin
from processor.db.engine import get_session_factory
from processor.db.uow import UnitOfWork
from submit.cli import cli
from submit.files import COLUMNS, FileFormat, Row, read_rows
from tests.builders import UowFactory, make_account, make_customer
from tests.clis import error_line, invoke, mistype
from tests.conftest import ThrowawayDatabases, setting


@pytest.fixture
def accounts(make_uow: UowFactory) -> list[str]:
    return [make_account(make_uow).number for _ in range(3)]


def generate(out: Path | str, *args: str, accounts: list[str] | None = None) -> Result:
    named = [option for number in accounts or [] for option in ("--account", number)]
    return invoke(cli, "generate", "--out", str(out), *named, *args)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def dry_run_errors(path: Path) -> set[tuple[int, str]]:
    """The (line, field) of each error `submit file --dry-run` reports for the file."""
    result = invoke(cli, "file", str(path), "--dry-run", "--json")
    summary: dict[str, Any] = json.loads(result.stdout)
    return {(error["line"], error["field"]) for error in summary["errors"]}


def listed_bad_rows(stderr: str) -> set[tuple[int, str]]:
    """The (line, field) of each bad row that `submit generate` lists on stderr."""
    return {(int(line), field) for line, field in re.findall(r"^  line (\d+): (\w+): ", stderr, re.MULTILINE)}


def accounts_used(rows: list[dict[str, str]]) -> set[str]:
    return {row[name] for row in rows for name in ("source", "destination") if row[name]}


class TestGenerate:
    def test_writes_a_header_and_the_rows_asked_for(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "50", accounts=accounts)

        assert result.exit_code == 0, result.output
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines[0] == ",".join(COLUMNS)
        assert len(lines) == 51

    def test_rows_are_a_mix_of_transfers_deposits_and_some_withdrawals(
        self, tmp_path: Path, accounts: list[str]
    ) -> None:
        out = tmp_path / "payments.csv"

        generate(out, "--rows", "200", "--bad-rows", "0", accounts=accounts)

        types = [row["type"] for row in csv_rows(out)]
        assert 0 < types.count("withdrawal") < types.count("deposit")
        assert types.count("withdrawal") < types.count("transfer")
        assert types.count("deposit") + types.count("transfer") + types.count("withdrawal") == 200

    def test_valid_rows_pay_between_the_given_accounts_only(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        generate(out, "--rows", "100", "--bad-rows", "0", accounts=accounts)

        assert accounts_used(csv_rows(out)) == set(accounts)

    def test_references_name_the_seed_and_the_row(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        generate(out, "--rows", "3", "--seed", "42", accounts=accounts)

        assert [row["reference"] for row in csv_rows(out)] == ["batch-42-1", "batch-42-2", "batch-42-3"]

    def test_same_seed_writes_the_same_file(self, tmp_path: Path, accounts: list[str]) -> None:
        first, second = tmp_path / "first.csv", tmp_path / "second.csv"

        generate(first, "--rows", "100", "--seed", "7", accounts=accounts)
        generate(second, "--rows", "100", "--seed", "7", accounts=accounts)

        assert first.read_bytes() == second.read_bytes()

    def test_another_seed_writes_other_payments(self, tmp_path: Path, accounts: list[str]) -> None:
        first, second = tmp_path / "first.csv", tmp_path / "second.csv"

        generate(first, "--rows", "100", "--seed", "7", accounts=accounts)
        generate(second, "--rows", "100", "--seed", "8", accounts=accounts)

        payments = [
            [{k: v for k, v in row.items() if k != "reference"} for row in csv_rows(f)] for f in (first, second)
        ]
        assert payments[0] != payments[1]

    def test_a_longer_file_of_a_seed_repeats_the_shorter_ones_valid_rows(
        self, tmp_path: Path, accounts: list[str]
    ) -> None:
        short, long = tmp_path / "short.csv", tmp_path / "long.csv"

        generate(short, "--rows", "40", "--bad-rows", "0", accounts=accounts)
        generate(long, "--rows", "80", "--bad-rows", "0", accounts=accounts)

        assert csv_rows(long)[:40] == csv_rows(short)

    def test_bad_rows_listed_on_stderr_are_exactly_those_a_dry_run_refuses(
        self, tmp_path: Path, accounts: list[str]
    ) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "500", accounts=accounts)

        listed = listed_bad_rows(result.stderr)
        assert len(listed) == 5
        assert listed == dry_run_errors(out)

    def test_each_default_bad_row_is_wrong_in_another_way(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "500", accounts=accounts)

        problems = re.findall(r"^  line \d+: \w+: (.+)$", result.stderr, re.MULTILINE)
        assert sorted(problems) == [
            "amount with three decimal places",
            "deposit without a destination",
            "mistyped account number (last digit changed)",
            "negative amount",
            "unknown type",
        ]

    def test_mistyped_account_differs_from_a_given_one_in_its_last_digit(
        self, tmp_path: Path, accounts: list[str]
    ) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "10", "--bad-rows", "1", accounts=accounts)

        ((line, field),) = listed_bad_rows(result.stderr)
        mistyped = csv_rows(out)[line - 2][field]
        assert mistyped in {mistype(number) for number in accounts}

    def test_more_bad_rows_than_kinds_are_all_refused(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "40", "--bad-rows", "12", accounts=accounts)

        listed = listed_bad_rows(result.stderr)
        assert len(listed) == 12
        assert listed == dry_run_errors(out)

    def test_a_file_of_fewer_than_five_rows_is_all_bad_by_default(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.csv"

        result = generate(out, "--rows", "3", accounts=accounts)

        assert result.exit_code == 0, result.output
        assert {line for line, _ in dry_run_errors(out)} == {2, 3, 4}

    def test_json_summary_gives_the_bad_rows_by_their_json_lines_line(
        self, tmp_path: Path, accounts: list[str]
    ) -> None:
        out = tmp_path / "payments.jsonl"

        result = generate(out, "--rows", "300", "--json", accounts=accounts)

        summary = json.loads(result.stdout)
        assert (summary["path"], summary["format"], summary["rows"], summary["seed"]) == (str(out), "jsonl", 300, 1)
        assert {(bad["line"], bad["field"]) for bad in summary["bad_rows"]} == dry_run_errors(out)

    def test_jsonl_is_read_back_row_by_row_by_the_jsonl_reader(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.jsonl"

        result = generate(out, "--rows", "30", "--format", "jsonl", "--bad-rows", "0", accounts=accounts)

        assert result.exit_code == 0, result.output
        rows = list(read_rows(out, FileFormat.JSONL))
        assert all(isinstance(row, Row) for row in rows)
        assert [row.line for row in rows] == list(range(1, 31))

    def test_format_follows_the_extension_of_out(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.ndjson"

        generate(out, "--rows", "2", accounts=accounts)

        assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["reference"] == "batch-1-1"

    def test_dash_writes_the_file_to_stdout_and_the_report_to_stderr(self, accounts: list[str]) -> None:
        result = generate("-", "--rows", "20", accounts=accounts)

        assert result.exit_code == 0
        assert result.stdout.splitlines()[0] == ",".join(COLUMNS)
        assert len(result.stdout.splitlines()) == 21
        assert result.stderr.startswith("wrote 20 rows to stdout (csv, seed 1, 3 accounts)\n")

    @pytest.mark.parametrize(
        ("args", "complaint"),
        [
            (["--rows", "0"], "--rows"),
            (["--rows", "3", "--bad-rows", "4"], "--bad-rows"),
            (["--rows", "3", "--seed", "-1"], "--seed"),
            (["--rows", "3", "--format", "xml"], "--format"),
        ],
        ids=["no-rows", "more-bad-rows-than-rows", "negative-seed", "unknown-format"],
    )
    def test_bad_option_is_a_usage_error(self, accounts: list[str], args: list[str], complaint: str) -> None:
        result = generate("-", *args, accounts=accounts)

        assert result.exit_code == 2
        assert complaint in result.stderr
        assert result.stdout == ""

    def test_mistyped_account_is_a_usage_error(self, accounts: list[str]) -> None:
        result = generate("-", "--rows", "3", accounts=[mistype(accounts[0])])

        assert result.exit_code == 2
        assert f"Invalid value for '--account': {mistype(accounts[0])} is not a valid account number" in result.stderr

    def test_out_without_a_known_extension_is_a_usage_error(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "payments.txt"

        result = generate(out, "--rows", "3", accounts=accounts)

        assert result.exit_code == 2
        assert "use --format" in result.stderr
        assert not out.exists()

    def test_json_with_the_file_on_stdout_is_a_usage_error(self, accounts: list[str]) -> None:
        result = generate("-", "--rows", "3", "--json", accounts=accounts)

        assert result.exit_code == 2
        assert "give --out a path" in result.stderr

    def test_out_in_a_missing_directory_fails_with_one_line(self, tmp_path: Path, accounts: list[str]) -> None:
        out = tmp_path / "missing" / "payments.csv"

        result = generate(out, "--rows", "3", accounts=accounts)

        assert result.exit_code == 1
        assert error_line(result.stderr) == f"error: cannot write {out}: No such file or directory"


@pytest.fixture
def fresh_bank(databases: ThrowawayDatabases) -> Iterator[UowFactory]:
    """A new database, as `make demo` starts from, named by DATABASE_URL while the test runs."""
    url = databases.create("generate")
    admin.upgrade(url)
    factory = get_session_factory(url)
    with setting("DATABASE_URL", url):
        yield lambda: UnitOfWork(factory)
    databases.drop(url)


class TestDemoPayees:
    @pytest.fixture
    def demo(self, fresh_bank: UowFactory) -> dict[str, str]:
        """The demo's two customers (the first two registered) with accounts of each kind, and a third customer."""
        alice, bob, carol = (make_customer(fresh_bank, name) for name in ("Alice", "Bob", "Carol"))
        assert (alice.number, bob.number) == (100001, 100002)
        return {
            "alice-current": make_account(fresh_bank, customer=alice).number,
            "alice-savings": make_account(fresh_bank, type="savings", customer=alice).number,
            "bob-reward": make_account(fresh_bank, type="reward", customer=bob).number,
            "bob-frozen": make_account(fresh_bank, status="frozen", customer=bob).number,
            "bob-euro": make_account(fresh_bank, currency="EUR", customer=bob).number,
            "carol-current": make_account(fresh_bank, customer=carol).number,
        }

    def test_without_accounts_pays_between_the_active_gbp_accounts_of_the_demo_customers(
        self, tmp_path: Path, demo: dict[str, str]
    ) -> None:
        out = tmp_path / "sample.csv"

        result = generate(out, "--rows", "200", "--bad-rows", "0")

        assert result.exit_code == 0, result.output
        assert accounts_used(csv_rows(out)) == {demo["alice-current"], demo["alice-savings"], demo["bob-reward"]}

    def test_without_accounts_a_savings_account_is_only_paid_into(self, tmp_path: Path, demo: dict[str, str]) -> None:
        out = tmp_path / "sample.csv"

        generate(out, "--rows", "200", "--bad-rows", "0")

        rows = csv_rows(out)
        assert demo["alice-savings"] in {row["destination"] for row in rows}
        assert demo["alice-savings"] not in {row["source"] for row in rows}

    def test_without_accounts_and_no_demo_customers_fails_with_one_line(
        self, tmp_path: Path, fresh_bank: UowFactory
    ) -> None:
        out = tmp_path / "sample.csv"

        result = generate(out, "--rows", "10")

        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert line.startswith("error: the demo customers 100001 and 100002 have no active GBP account")
        assert line.endswith("run 'make demo' first, or name accounts with --account")
        assert not out.exists()
