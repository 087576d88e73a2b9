"""Reading commands and services: listings paged by keyset cursors, transaction show, audit, statements."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from click.testing import Result

from processor.cli import cli
from processor.db.engine import get_engine
from processor.domain.errors import InvalidValue
from processor.domain.held import HeldMessage, HeldReason
from processor.services.held import hold_message
from processor.services.reading import list_transactions
from tests.builders import UowFactory, make_account, make_customer, pay
from tests.clis import error_line, invoke, invoke_json
from tests.requests import deposit, transfer, withdrawal


def run(*args: str) -> Result:
    return invoke(cli, *args)


def run_json(*args: str) -> Any:
    return invoke_json(cli, *args)


def all_pages(*command: str, limit: int = 2) -> list[list[Any]]:
    """Every page of a listing, following `next` until it is null."""
    pages, after = [], None
    while True:
        data = run_json(*command, "--limit", str(limit), *(["--after", after] if after else []))
        assert set(data) >= {"items", "next"}
        pages.append(data["items"])
        after = data["next"]
        if after is None:
            return pages


def db_now(database_url: str) -> str:
    """The database's clock now, as an RFC 3339 time: a boundary between the payments made before and after."""
    with get_engine(database_url).connect() as connection:
        moment: datetime = connection.execute(sqlalchemy.text("SELECT clock_timestamp()")).scalar_one()
    return moment.isoformat()


class TestCustomerList:
    def test_search_matches_part_of_a_name_or_email_and_pages_by_number(self, make_uow: UowFactory) -> None:
        ada = make_customer(make_uow, name="Ada Lovelace")
        make_customer(make_uow, name="Grace Hopper")
        adam = make_customer(make_uow, name="Adam Smith")

        pages = all_pages("customer", "list", "--search", "ADA", limit=1)

        assert [[c["number"] for c in page] for page in pages] == [[ada.number], [adam.number]]
        assert set(pages[0][0]) == {"number", "name", "email"}

    def test_wildcards_in_a_search_are_plain_text(self, make_uow: UowFactory) -> None:
        make_customer(make_uow, name="Ada Lovelace")

        assert run_json("customer", "list", "--search", "%")["items"] == []


class TestAccountList:
    def test_filters_by_customer_type_and_status(self, make_uow: UowFactory) -> None:
        owner = make_customer(make_uow)
        standard = make_account(make_uow, customer=owner)
        savings = make_account(make_uow, type="savings", customer=owner)
        frozen = make_account(make_uow, type="savings", customer=owner, status="frozen")
        make_account(make_uow)  # someone else's

        mine = run_json("account", "list", "--customer", str(owner.number))["items"]
        active_savings = run_json("account", "list", "--type", "savings", "--status", "active")["items"]

        assert [a["number"] for a in mine] == [standard.number, savings.number, frozen.number]
        assert [a["number"] for a in active_savings] == [savings.number]

    def test_an_unknown_status_is_refused_with_the_known_ones(self, make_uow: UowFactory) -> None:
        result = run("account", "list", "--status", "asleep")

        assert result.exit_code == 1
        assert "one of: active, dormant" in error_line(result.stderr)


class TestTransactionList:
    def test_pages_stay_exact_while_payments_arrive_between_them(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        before = [deposit(account, "1.00", reference=f"old-{i}") for i in range(5)]
        for request in before:
            pay(make_uow, request)
        seen: list[str] = []
        after = None
        for page_number in range(10):
            page = list_transactions(make_uow(), account=account.number, limit=2, after=after)
            seen += [t.reference for t in page.items]
            # New payments keep arriving; they are newer than the listing's start, so they never push rows
            # between pages, and no row is seen twice.
            pay(make_uow, deposit(account, "1.00", reference=f"new-{page_number}"))
            after = page.next
            if after is None:
                break

        assert seen == [r.reference for r in reversed(before)]

    def test_filters_by_account_range_status_and_reason(self, make_uow: UowFactory, database_url: str) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "5.00", reference="early-in"))
        middle = db_now(database_url)
        pay(make_uow, withdrawal(b, "99.00", reference="late-broke"), deposit(a, "1.00", reference="not-b"))
        end = db_now(database_url)
        pay(make_uow, deposit(b, "1.00", reference="after-end"))

        def refs(*filters: str) -> list[str]:
            return [t["reference"] for t in run_json("transaction", "list", "--account", b.number, *filters)["items"]]

        assert refs("--to", middle) == ["early-in"]
        assert refs("--from", middle, "--to", end) == ["late-broke"]
        assert refs("--status", "rejected") == ["late-broke"]
        assert refs("--reason", "insufficient_funds") == ["late-broke"]
        assert refs("--status", "applied") == ["after-end", "early-in"]

    def test_a_range_that_ends_before_it_starts_is_refused(self, make_uow: UowFactory) -> None:
        with pytest.raises(InvalidValue, match="before it starts"):
            list_transactions(
                make_uow(), start=datetime(2026, 12, 2, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC)
            )

    def test_a_malformed_date_is_a_usage_error(self, make_uow: UowFactory) -> None:
        result = run("transaction", "list", "--from", "yesterday")

        assert result.exit_code == 2
        assert "not a date" in result.stderr

    @pytest.mark.parametrize("cursor", ["not-a-cursor", "WyJhY2NvdW50cyIsMV0"], ids=["garbage", "other-listing"])
    def test_a_cursor_of_nothing_or_of_another_listing_is_refused(self, make_uow: UowFactory, cursor: str) -> None:
        result = run("transaction", "list", "--after", cursor)

        assert result.exit_code == 1
        assert "is not a cursor of transactions" in error_line(result.stderr)


class TestTransactionShow:
    def test_shows_request_outcome_entries_and_conflicts(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="50.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "20.00", reference="show-1", description="rent"))
        pay(make_uow, transfer(a, b, "21.00", reference="show-1"))  # a conflicting resend

        data = run_json("transaction", "show", "show-1")

        assert (data["status"], data["type"], data["amount"], data["description"]) == (
            "applied",
            "transfer",
            "20.00",
            "rent",
        )
        assert data["request"]["amount"] == "20.00"
        assert [(e["account"], e["amount"]) for e in data["entries"]] == [(a.number, "-20.00"), (b.number, "20.00")]
        assert [c["fields"] for c in data["conflicts"]] == [["amount"]]
        assert datetime.fromisoformat(data["at"]).utcoffset() == timedelta(0)

    def test_a_held_message_under_a_reference_shows_even_before_it_has_an_outcome(self, make_uow: UowFactory) -> None:
        held = HeldMessage.of(
            HeldReason.RETRIES_SPENT, "payments.deposit", "task-show", (), {"reference": "held-show"}, "timeout"
        )
        held_id = hold_message(make_uow(), held)

        data = run_json("transaction", "show", "held-show")

        assert (data["status"], data["held"], data["entries"]) == ("pending", [held_id], [])

    def test_an_unknown_reference_is_exit_1(self, make_uow: UowFactory) -> None:
        result = run("transaction", "show", "nowhere-1")

        assert result.exit_code == 1
        assert error_line(result.stderr) == "error: no transaction has the reference nowhere-1"


class TestAuditList:
    def test_lists_an_accounts_actions_newest_first(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, status="frozen")
        make_account(make_uow)

        data = run_json("audit", "list", "--account", account.number)

        assert [(e["action"], e["entity"]) for e in data["items"]] == [
            ("account.status_changed", account.number),
            ("account.opened", account.number),
        ]
        assert data["items"][0]["details"]["to"] == "frozen"
        assert data["next"] is None


def ledger_lines(database_url: str, account: str) -> list[list[str]]:
    """An account's entries read straight from the tables, as the CSV should have them."""
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(
            sqlalchemy.text(
                "SELECT e.created_at, t.reference, t.type, e.amount, e.balance_after"
                " FROM ledger_entries e JOIN transactions t ON t.id = e.transaction_id"
                " JOIN accounts a ON a.id = e.account_id WHERE a.number = :n ORDER BY e.id"
            ),
            {"n": account},
        )
        return [
            [r.created_at.astimezone(UTC).isoformat(), r.reference, r.type, str(r.amount), str(r.balance_after)]
            for r in rows
        ]


class TestStatement:
    def make_history(self, make_uow: UowFactory, database_url: str) -> tuple[str, str, str, str]:
        """Four payments, and two boundaries: one after the first, one after the third."""
        account = make_account(make_uow)
        other = make_account(make_uow)
        pay(make_uow, deposit(account, "100.00", reference="first-salary", description="salary"))
        start = db_now(database_url)
        pay(make_uow, transfer(account, other, "30.00", reference="then-rent", description='=HYPERLINK("x")'))
        pay(make_uow, withdrawal(account, "20.00", reference="then-cash"))
        end = db_now(database_url)
        pay(make_uow, deposit(account, "5.00", reference="last-refund"))
        return account.number, other.number, start, end

    def test_a_range_has_its_opening_and_closing_balance_and_counterparties(
        self, make_uow: UowFactory, database_url: str
    ) -> None:
        account, other, start, end = self.make_history(make_uow, database_url)

        data = run_json("account", "statement", account, "--from", start, "--to", end)

        assert (data["opening_balance"], data["closing_balance"]) == ("100.00", "50.00")
        assert [(e["reference"], e["amount"], e["balance_after"], e["counterparty"]) for e in data["items"]] == [
            ("then-rent", "-30.00", "70.00", other),
            ("then-cash", "-20.00", "50.00", None),
        ]
        assert data["items"][0]["description"] == '=HYPERLINK("x")'
        assert datetime.fromisoformat(data["items"][0]["at"]).utcoffset() == timedelta(0)

    def test_pages_of_a_statement_join_up(self, make_uow: UowFactory, database_url: str) -> None:
        account, *_ = self.make_history(make_uow, database_url)

        pages = all_pages("account", "statement", account, limit=3)

        assert [[e["reference"] for e in page] for page in pages] == [
            ["first-salary", "then-rent", "then-cash"],
            ["last-refund"],
        ]

    def test_csv_has_one_line_per_entry_of_the_range(self, make_uow: UowFactory, database_url: str) -> None:
        account, other, start, _ = self.make_history(make_uow, database_url)

        result = run("account", "statement", account, "--from", start, "--format", "csv")

        assert result.exit_code == 0, result.stderr
        lines = list(csv.reader(io.StringIO(result.stdout)))
        assert lines[0] == [
            "at",
            "reference",
            "type",
            "counterparty",
            "description",
            "amount",
            "balance_after",
            "reverses",
        ]
        ledger = ledger_lines(database_url, account)[1:]
        assert [line[:3] + line[5:7] for line in lines[1:]] == ledger
        # A description a spreadsheet would run as a formula is quoted so that it is shown instead.
        assert [line[3:5] for line in lines[1:]] == [[other, '\'=HYPERLINK("x")'], ["", ""], ["", ""]]

    def test_the_csv_of_many_entries_matches_the_ledger_line_by_line(
        self, make_uow: UowFactory, database_url: str
    ) -> None:
        account = make_account(make_uow)
        requests = [deposit(account, f"{i}.01") for i in range(1, 2_500)]
        for first in range(0, len(requests), 500):
            pay(make_uow, *requests[first : first + 500])

        result = run("account", "statement", account.number, "--format", "csv")

        lines = list(csv.reader(io.StringIO(result.stdout)))[1:]
        assert len(lines) == len(requests)
        assert [line[:3] + line[5:7] for line in lines] == ledger_lines(database_url, account.number)
        assert lines[-1][6] == str(sum(r.amount for r in requests))

    def test_table_shows_the_balances_of_the_range(self, make_uow: UowFactory, database_url: str) -> None:
        account, _, _, end = self.make_history(make_uow, database_url)

        result = run("account", "statement", account, "--from", end)

        assert result.exit_code == 0, result.stderr
        assert "opening balance 50.00" in result.stdout
        assert "closing balance 55.00" in result.stdout
        assert "last-refund" in result.stdout
        assert "then-cash" not in result.stdout
