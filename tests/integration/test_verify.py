from __future__ import annotations

import pytest

from processor.services.verify import verify_ledger
from tests.builders import UowFactory, make_account, pay, tamper
from tests.requests import deposit, transfer, withdrawal


@pytest.fixture
def busy_ledger(make_uow: UowFactory) -> tuple[str, str]:
    a = make_account(make_uow, balance="100.00")
    b = make_account(make_uow, type="reward", balance="20.00")
    pay(make_uow, transfer(a.number, b.number, "30.00"), withdrawal(b.number, "5.00"), withdrawal(a.number, "999"))
    pay(make_uow, deposit(a.number, "1.00", currency="EUR"))  # currency_mismatch: a rejection in the books
    return a.number, b.number


class TestVerify:
    # The database refuses each of these ledgers (migration 0004); tamper() writes them past its guards, as a
    # database restored from elsewhere or edited with the triggers off could hold them, for verify to find.

    def test_a_clean_ledger_has_no_violations(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        assert verify_ledger(make_uow()) == []

    def test_balance_that_disagrees_with_its_entries(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        a, _ = busy_ledger
        tamper(make_uow, f"UPDATE accounts SET balance = balance + 1 WHERE number = '{a}'")
        checks = {v.check for v in verify_ledger(make_uow())}
        assert checks == {"balance_equals_entries", "balances_sum_to_zero"}

    def test_entries_that_do_not_sum_to_zero(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        tamper(
            make_uow,
            "UPDATE ledger_entries SET amount = amount + 1, balance_after = balance_after + 1"
            " WHERE id = (SELECT max(id) FROM ledger_entries)",
            "UPDATE accounts SET balance = balance + 1"
            " WHERE id = (SELECT account_id FROM ledger_entries ORDER BY id DESC LIMIT 1)",
        )
        checks = {v.check for v in verify_ledger(make_uow())}
        assert checks == {"transaction_entries_sum_to_zero", "balances_sum_to_zero"}

    def test_wrong_balance_after(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        tamper(make_uow, "UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE id = 1")
        assert {v.check for v in verify_ledger(make_uow())} == {"balance_after_is_running_total"}

    def test_applied_without_entries(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        tamper(
            make_uow,
            "UPDATE accounts a SET balance = balance - e.amount FROM ledger_entries e"
            " WHERE e.account_id = a.id AND e.transaction_id = (SELECT max(transaction_id) FROM ledger_entries)",
            "DELETE FROM ledger_entries WHERE transaction_id = (SELECT max(transaction_id) FROM ledger_entries)",
        )
        assert {v.check for v in verify_ledger(make_uow())} == {"applied_has_entries"}

    def test_rejected_with_entries(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        tamper(
            make_uow,
            "UPDATE transactions SET status = 'rejected', reason = 'insufficient_funds'"
            " WHERE id = (SELECT max(transaction_id) FROM ledger_entries)",
        )
        assert {v.check for v in verify_ledger(make_uow())} == {"rejected_has_no_entries"}

    def test_account_below_its_floor(self, make_uow: UowFactory, busy_ledger: tuple[str, str]) -> None:
        # The CHECK constraint guards the floor; verify must still catch a ledger loaded without it.
        _, b = busy_ledger
        tamper(
            make_uow,
            "ALTER TABLE accounts DROP CONSTRAINT ck_accounts_balance_above_floor",
            f"UPDATE accounts SET balance = -1 WHERE number = '{b}'",
        )
        try:
            checks = {v.check for v in verify_ledger(make_uow())}
        finally:
            tamper(
                make_uow,
                f"UPDATE accounts SET balance = 0 WHERE number = '{b}'",
                "ALTER TABLE accounts ADD CONSTRAINT ck_accounts_balance_above_floor"
                " CHECK (type = 'settlement' OR balance >= -overdraft_limit)",
            )
        assert "balance_above_floor" in checks
