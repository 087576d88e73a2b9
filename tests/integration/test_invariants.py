"""The database refuses a broken ledger (migration 0004), whoever writes it, and still lets every payment through."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy

from processor.db.transient import is_transient
from processor.messages import read_fields
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account, pay
from tests.requests import deposit, transfer, withdrawal

CHECK_VIOLATION = "23514"

# Raw SQL as a person with a psql prompt would write it: a transfer recorded, posted and its balances moved.
TRANSACTION = (
    "INSERT INTO transactions (reference, type, source, destination, source_account_id, destination_account_id,"
    " amount, currency, payload, fingerprint, status)"
    " SELECT :reference, 'transfer', s.number, d.number, s.id, d.id, :amount, s.currency, '{}', 'raw', 'applied'"
    " FROM accounts s, accounts d WHERE s.number = :source AND d.number = :destination"
)
DEBIT_AND_CREDIT = (
    "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
    " SELECT t.id, a.id, x.amount, a.balance + x.amount"
    " FROM transactions t, (VALUES (:source, -CAST(:amount AS numeric)), (:destination, CAST(:amount AS numeric)))"
    " AS x(number, amount) JOIN accounts a ON a.number = x.number WHERE t.reference = :reference"
)
DEBIT = DEBIT_AND_CREDIT.replace(", (:destination, CAST(:amount AS numeric))", "")
CREDIT = DEBIT_AND_CREDIT.replace("(:source, -CAST(:amount AS numeric)), ", "")
MOVE_BALANCES = (
    "UPDATE accounts SET balance = balance + CASE number WHEN :source THEN -CAST(:amount AS numeric) ELSE :amount END"
    " WHERE number IN (:source, :destination)"
)


def refused(make_uow: UowFactory, rule: str, *statements: str, **params: Any) -> str:
    """Run raw SQL in one transaction and commit it: the database must refuse it for `rule`. Returns its message."""
    with pytest.raises(sqlalchemy.exc.IntegrityError) as caught:
        commit(make_uow, *statements, **params)
    error: Any = caught.value.orig  # psycopg2's error: its SQLSTATE and diagnostics
    assert (error.pgcode, error.diag.constraint_name) == (CHECK_VIOLATION, rule), error
    assert not is_transient(caught.value)  # a worker holds such a payment; it never retries it
    return str(error.diag.message_primary)


def commit(make_uow: UowFactory, *statements: str, **params: Any) -> None:
    with make_uow() as uow:
        for statement in statements:
            uow.session.execute(sqlalchemy.text(statement), params)
        uow.commit()


@pytest.fixture
def ledger(make_uow: UowFactory) -> tuple[str, str]:
    """Every service path, each committed under the database's guards: two accounts and the ledger they leave."""
    alice = make_account(make_uow, balance="500.00")
    bob = make_account(make_uow, type="savings")
    outcomes = pay(
        make_uow,
        deposit(bob, "40.00", reference="in-1"),
        transfer(alice, bob, "25.00"),
        transfer(alice, bob, "5.00"),  # an account twice in one statement: running totals within it
        transfer(bob, alice, "2.50"),
        withdrawal(bob, "10.00"),
        withdrawal(alice, "10000.00"),
        deposit(bob, "1.00", currency="EUR"),
        read_fields({"reference": "bad-1", "type": "deposit", "destination": bob.number}),
    )
    again = pay(make_uow, deposit(bob, "40.00", reference="in-1"), deposit(alice, "41.00", reference="in-1"))
    assert [(o.status, o.reason) for o in outcomes] == [("applied", None)] * 5 + [
        ("rejected", "insufficient_funds"),
        ("rejected", "currency_mismatch"),
        ("rejected", "invalid_request"),
    ]
    assert [o.delivery for o in again] == ["duplicate", "conflict"]
    assert (balance(make_uow, alice.number), balance(make_uow, bob.number)) == (Decimal("472.50"), Decimal("57.50"))
    return alice.number, bob.number


class TestServicePaths:
    def test_every_payment_path_commits_and_leaves_a_sound_ledger(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        assert verify_ledger(make_uow()) == []

    def test_a_sound_transfer_written_by_hand_commits(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        alice, bob = ledger
        params = {"reference": "by-hand", "source": alice, "destination": bob, "amount": "1.00"}
        commit(make_uow, TRANSACTION, DEBIT_AND_CREDIT, MOVE_BALANCES, **params)
        assert (balance(make_uow, alice), balance(make_uow, bob)) == (Decimal("471.50"), Decimal("58.50"))
        assert verify_ledger(make_uow()) == []


class TestEntriesSumToZeroInTheTransactionsCurrency:
    def test_a_deposit_of_one_entry_and_a_matching_balance_is_refused(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        # The forgery: an applied deposit of 1,000,000, one entry, the balance moved to match.
        alice, _ = ledger
        message = refused(
            make_uow,
            "transaction_entries_sum_to_zero",
            "INSERT INTO transactions (reference, type, destination, destination_account_id, amount, currency,"
            " payload, fingerprint, status) SELECT 'forged', 'deposit', number, id, 1000000, 'GBP', '{}', 'x',"
            " 'applied' FROM accounts WHERE number = :alice",
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
            " SELECT t.id, a.id, 1000000, a.balance + 1000000 FROM transactions t, accounts a"
            " WHERE t.reference = 'forged' AND a.number = :alice",
            "UPDATE accounts SET balance = balance + 1000000 WHERE number = :alice",
            alice=alice,
        )
        assert message == "the ledger entries of transaction forged sum to 1000000.00, not zero"
        assert balance(make_uow, alice) == Decimal("472.50")

    def test_entries_written_apart_are_refused(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        # What one INSERT posts to a transaction must balance: a debit now and a credit later is refused at once.
        alice, bob = ledger
        params = {"reference": "apart", "source": alice, "destination": bob, "amount": "1.00"}
        refused(make_uow, "transaction_entries_sum_to_zero", TRANSACTION, DEBIT, CREDIT, MOVE_BALANCES, **params)

    def test_an_entry_on_an_account_in_another_currency_is_refused(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        alice, _ = ledger
        euro = make_account(make_uow, currency="EUR").number
        params = {"reference": "fx", "source": alice, "destination": euro, "amount": "1.00"}
        message = refused(
            make_uow, "entries_in_transaction_currency", TRANSACTION, DEBIT_AND_CREDIT, MOVE_BALANCES, **params
        )
        assert message == "transaction fx is in GBP: an entry on an account in EUR is not"


class TestBalancesMoveOnlyWithEntries:
    def test_a_balance_changed_without_entries_is_refused(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        alice, _ = ledger
        message = refused(
            make_uow, "balance_equals_entries", "UPDATE accounts SET balance = balance + 1 WHERE number = :n", n=alice
        )
        assert message == (
            f"account {alice}: balance 472.50 to 473.50 does not follow its ledger entries, which end at 472.50"
        )

    def test_entries_without_their_balances_are_refused_at_commit(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        alice, bob = ledger
        params = {"reference": "no-balance", "source": alice, "destination": bob, "amount": "1.00"}
        message = refused(make_uow, "balance_equals_entries", TRANSACTION, DEBIT_AND_CREDIT, **params)
        assert message == f"account {alice}: at commit its balance is 472.50, but its ledger entries end at 471.50"

    def test_an_entry_that_breaks_the_running_total_is_refused(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        alice, bob = ledger
        params = {"reference": "skewed", "source": alice, "destination": bob, "amount": "1.00"}
        skewed = DEBIT_AND_CREDIT.replace("a.balance + x.amount", "a.balance + x.amount + 5")
        shifted = MOVE_BALANCES.replace("balance + CASE", "balance + 5 + CASE")
        refused(make_uow, "balance_after_is_running_total", TRANSACTION, skewed, shifted, **params)

    def test_an_account_opened_with_money_is_refused(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        refused(
            make_uow,
            "balance_equals_entries",
            "INSERT INTO accounts (number, type, currency, balance, customer_id)"
            " SELECT '99999999', 'standard', 'GBP', 100, customer_id FROM accounts WHERE number = :n",
            n=ledger[0],
        )

    def test_a_writer_who_read_a_stale_balance_is_refused_once_the_other_commits(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        # Two hand-written transfers from one account at once, neither locking it first: the second computed its
        # balances before the first committed. The entries' trigger makes it wait for the account, then see that
        # its running total no longer starts where the account's entries end.
        alice, bob = ledger
        first_params = {"reference": "first", "source": alice, "destination": bob, "amount": "1.00"}
        stale = {"reference": "second", "source": alice, "destination": bob, "amount": "2.00"}
        outcome: list[BaseException | None] = []

        def second() -> None:
            try:
                with make_uow() as uow:
                    uow.session.execute(sqlalchemy.text(TRANSACTION), stale)
                    uow.session.execute(
                        sqlalchemy.text(
                            "INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)"
                            " SELECT t.id, a.id, x.amount, x.after FROM transactions t,"
                            " (VALUES (:source, -2.00, 470.50), (:destination, 2.00, 59.50))"
                            " AS x(number, amount, after)"
                            " JOIN accounts a ON a.number = x.number WHERE t.reference = 'second'"
                        ),
                        stale,
                    )
                    uow.session.execute(
                        sqlalchemy.text(
                            "UPDATE accounts SET balance = CASE number WHEN :source THEN 470.50 ELSE 59.50 END"
                            " WHERE number IN (:source, :destination)"
                        ),
                        stale,
                    )
                    uow.commit()
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        thread = threading.Thread(target=second)
        try:
            with make_uow() as first:
                for statement in (TRANSACTION, DEBIT_AND_CREDIT, MOVE_BALANCES):
                    first.session.execute(sqlalchemy.text(statement), first_params)
                thread.start()
                waiting_for_a_lock(make_uow)
                first.commit()
        finally:
            thread.join(30)
        [error] = outcome
        assert isinstance(error, sqlalchemy.exc.IntegrityError), error
        cause: Any = error.orig
        assert cause.diag.constraint_name == "balance_after_is_running_total"
        assert (balance(make_uow, alice), balance(make_uow, bob)) == (Decimal("471.50"), Decimal("58.50"))
        assert verify_ledger(make_uow()) == []


def waiting_for_a_lock(make_uow: UowFactory, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with make_uow() as uow:
            if uow.session.scalar(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ):
                return
        time.sleep(0.02)
    raise AssertionError("the second writer never waited for the first")


class TestAppliedHasEntriesRejectedNone:
    def test_an_applied_transaction_without_entries_is_refused_at_commit(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        alice, bob = ledger
        params = {"reference": "empty", "source": alice, "destination": bob, "amount": "1.00"}
        message = refused(make_uow, "applied_has_entries", TRANSACTION, **params)
        assert message == "transaction empty is applied but has no ledger entries"

    def test_entries_of_a_rejected_transaction_are_refused(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        alice, bob = ledger
        rejected = TRANSACTION.replace("'applied'", "'rejected'").replace("status)", "status, reason)")
        rejected = rejected.replace("'rejected' FROM", "'rejected', 'insufficient_funds' FROM")
        params = {"reference": "no", "source": alice, "destination": bob, "amount": "1.00"}
        message = refused(make_uow, "rejected_has_no_entries", rejected, DEBIT_AND_CREDIT, MOVE_BALANCES, **params)
        assert message == "transaction no is rejected: only an applied transaction has ledger entries"

    def test_entries_added_to_a_transaction_recorded_earlier_are_refused(
        self, make_uow: UowFactory, ledger: tuple[str, str]
    ) -> None:
        # Balanced and with their balances, but added to a recorded outcome after the fact.
        alice, bob = ledger
        pay(make_uow, transfer(alice, bob, "1.00", reference="earlier"))
        params = {"reference": "earlier", "source": alice, "destination": bob, "amount": "1.00"}
        refused(make_uow, "ledger_entries_with_their_transaction", DEBIT_AND_CREDIT, MOVE_BALANCES, **params)


class TestAppendOnly:
    def test_recorded_rows_are_not_changed_or_removed(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        for statement in (
            "UPDATE ledger_entries SET amount = amount * 2, balance_after = balance_after * 2",
            "DELETE FROM ledger_entries WHERE transaction_id = (SELECT max(transaction_id) FROM ledger_entries)",
            "DELETE FROM transactions WHERE status = 'rejected'",
            "UPDATE transactions SET status = 'rejected', reason = 'insufficient_funds' WHERE reference = 'in-1'",
            "UPDATE transactions SET amount = amount + 1 WHERE reference = 'in-1'",
            "UPDATE transactions SET created_at = created_at - interval '1 month'",
            "UPDATE transaction_conflicts SET fields = '[]'",
            "DELETE FROM transaction_conflicts",
        ):
            refused(make_uow, "append_only", statement)
        assert verify_ledger(make_uow()) == []

    def test_columns_added_later_may_change(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        # A later revision may link transactions (operator tools): only the recorded outcome is fixed.
        with make_uow() as uow:
            uow.session.execute(sqlalchemy.text("ALTER TABLE transactions ADD COLUMN probe_link text"))
            updated = uow.session.execute(sqlalchemy.text("UPDATE transactions SET probe_link = 'case-1'"))
            assert updated.rowcount > 0  # type: ignore[attr-defined]
            # rolled back on leaving: the column goes with it

    def test_an_accounts_currency_is_fixed(self, make_uow: UowFactory, ledger: tuple[str, str]) -> None:
        refused(
            make_uow,
            "entries_in_transaction_currency",
            "UPDATE accounts SET currency = 'EUR' WHERE number = :n",
            n=ledger[0],
        )
