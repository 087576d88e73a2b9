from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
import sqlalchemy

from processor.domain.book import Policy
from processor.domain.errors import InvalidRequest
from processor.messages import read_fields
from processor.services.accounts import change_status, get_account
from processor.services.payments import apply_payments, get_outcome
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account, pay, tamper
from tests.requests import deposit, transfer, withdrawal


def entries_of(make_uow: UowFactory, reference: str) -> list[tuple[str, Decimal, Decimal]]:
    with make_uow() as uow:
        rows = uow.session.execute(
            sqlalchemy.text(
                "SELECT a.number, e.amount, e.balance_after FROM ledger_entries e"
                " JOIN transactions t ON t.id = e.transaction_id JOIN accounts a ON a.id = e.account_id"
                " WHERE t.reference = :r ORDER BY e.id"
            ),
            {"r": reference},
        ).all()
    return [(r.number, r.amount, r.balance_after) for r in rows]


def count(make_uow: UowFactory, table: str) -> int:
    with make_uow() as uow:
        return int(uow.session.scalar(sqlalchemy.text(f"SELECT count(*) FROM {table}")) or 0)


class TestApply:
    def test_deposit_credits_the_account_against_settlement(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        (outcome,) = pay(make_uow, deposit(account.number, "125.50", reference="dep-1"))
        assert (outcome.status, outcome.reason, outcome.delivery) == ("applied", None, "first")
        assert balance(make_uow, account.number) == Decimal("125.50")
        (settlement, debit, _), (credited, credit, after) = entries_of(make_uow, "dep-1")
        assert (debit, credit, credited, after) == (
            Decimal("-125.50"),
            Decimal("125.50"),
            account.number,
            Decimal("125.50"),
        )
        assert settlement != account.number

    def test_withdrawal_debits_the_account(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="100.00")
        (outcome,) = pay(make_uow, withdrawal(account.number, "30.01"))
        assert outcome.status == "applied"
        assert balance(make_uow, account.number) == Decimal("69.99")

    def test_transfer_moves_money_and_entries_sum_to_zero(self, make_uow: UowFactory) -> None:
        source = make_account(make_uow, balance="100.00")
        destination = make_account(make_uow, type="savings")
        pay(make_uow, transfer(source.number, destination.number, "40.00", reference="tr-1"))
        assert (balance(make_uow, source.number), balance(make_uow, destination.number)) == (
            Decimal("60.00"),
            Decimal("40.00"),
        )
        assert entries_of(make_uow, "tr-1") == [
            (source.number, Decimal("-40.00"), Decimal("60.00")),
            (destination.number, Decimal("40.00"), Decimal("40.00")),
        ]

    def test_standard_account_uses_its_overdraft_but_not_beyond(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, overdraft_limit="50.00")
        first, second = pay(make_uow, withdrawal(account.number, "50.00"), withdrawal(account.number, "0.01"))
        assert (first.status, second.reason) == ("applied", "insufficient_funds")
        assert balance(make_uow, account.number) == Decimal("-50.00")

    @pytest.mark.parametrize("type", ["savings", "reward"])
    def test_savings_and_reward_never_go_below_zero(self, make_uow: UowFactory, type: str) -> None:
        account = make_account(make_uow, type=type, balance="10.00")
        (outcome,) = pay(make_uow, withdrawal(account.number, "10.01"))
        assert outcome.reason == "insufficient_funds"
        assert balance(make_uow, account.number) == Decimal("10.00")

    def test_reward_account_earns_points_on_deposits(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, type="reward")
        pay(make_uow, deposit(account.number, "125.50"), deposit(account.number, "9.99"))
        assert get_account(make_uow(), account.number).reward_points == 12

    def test_reward_points_follow_the_policy(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, type="reward")
        policy = Policy(reward_points_per_unit=3, reward_unit=Decimal("5.00"))
        pay(make_uow, deposit(account.number, "12.00"), policy=policy)
        assert get_account(make_uow(), account.number).reward_points == 6


class TestRejections:
    def test_rejection_is_recorded_without_entries_or_balance_change(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="5.00")
        (outcome,) = pay(make_uow, withdrawal(account.number, "6.00", reference="wd-1"))
        assert (outcome.status, outcome.reason) == ("rejected", "insufficient_funds")
        assert get_outcome(make_uow(), "wd-1").reason == "insufficient_funds"
        assert entries_of(make_uow, "wd-1") == []
        assert balance(make_uow, account.number) == Decimal("5.00")

    def test_unknown_account(self, make_uow: UowFactory) -> None:
        (outcome,) = pay(make_uow, deposit("123456782", "1.00"))
        assert outcome.reason == "account_not_found"

    def test_same_account_comes_before_not_found(self, make_uow: UowFactory) -> None:
        (outcome,) = pay(make_uow, transfer("123456782", "123456782", "1.00"))
        assert outcome.reason == "same_account"

    def test_currency_must_match_the_account(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="10.00")
        (outcome,) = pay(make_uow, withdrawal(account.number, "1.00", currency="EUR"))
        assert outcome.reason == "currency_mismatch"

    @pytest.mark.parametrize(
        ("status", "direction", "reason"),
        [
            ("dormant", "out", "outgoing_blocked"),
            ("outgoing_blocked", "out", "outgoing_blocked"),
            ("frozen", "out", "outgoing_blocked"),
            ("incoming_blocked", "in", "incoming_blocked"),
            ("frozen", "in", "incoming_blocked"),
            ("closed", "in", "account_closed"),
            ("closed", "out", "account_closed"),
        ],
    )
    def test_status_blocks_its_direction(self, make_uow: UowFactory, status: str, direction: str, reason: str) -> None:
        account = make_account(make_uow, overdraft_limit="100.00", status=status)
        request = deposit(account.number, "1.00") if direction == "in" else withdrawal(account.number, "1.00")
        (outcome,) = pay(make_uow, request)
        assert outcome.reason == reason

    @pytest.mark.parametrize(
        ("status", "direction"),
        [
            ("dormant", "in"),
            ("outgoing_blocked", "in"),
            ("incoming_blocked", "out"),
        ],
    )
    def test_status_lets_the_other_direction_through(self, make_uow: UowFactory, status: str, direction: str) -> None:
        account = make_account(make_uow, balance="5.00", status=status)
        request = deposit(account.number, "1.00") if direction == "in" else withdrawal(account.number, "1.00")
        (outcome,) = pay(make_uow, request)
        assert outcome.status == "applied"

    def test_transfer_checks_both_accounts(self, make_uow: UowFactory) -> None:
        source = make_account(make_uow, balance="10.00", status="outgoing_blocked")
        destination = make_account(make_uow, status="incoming_blocked")
        (outcome,) = pay(make_uow, transfer(source.number, destination.number, "1.00"))
        assert outcome.reason == "outgoing_blocked"
        change_status(make_uow(), source.number, "active", "hold lifted", "ops")
        (outcome,) = pay(make_uow, transfer(source.number, destination.number, "1.00"))
        assert outcome.reason == "incoming_blocked"


class TestSavingsMonthlyLimit:
    def test_seventh_outgoing_payment_in_a_month_is_rejected(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="100.00")
        other = make_account(make_uow)
        requests = [withdrawal(savings.number, "1.00") for _ in range(4)]
        requests += [transfer(savings.number, other.number, "1.00") for _ in range(3)]
        outcomes = pay(make_uow, *requests)
        assert [o.reason for o in outcomes] == [None] * 6 + ["withdrawal_limit_reached"]

    def test_rejected_and_incoming_payments_do_not_count(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="10.00")
        pay(make_uow, *[withdrawal(savings.number, "11.00") for _ in range(6)])  # all insufficient_funds
        pay(make_uow, *[deposit(savings.number, "1.00") for _ in range(6)])
        (outcome,) = pay(make_uow, withdrawal(savings.number, "1.00"))
        assert outcome.status == "applied"

    def test_last_months_payments_do_not_count(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="100.00")
        pay(make_uow, *[withdrawal(savings.number, "1.00") for _ in range(6)])
        # A recorded outcome's time never changes (migration 0004): moving these into last month takes tamper().
        tamper(make_uow, "UPDATE transactions SET created_at = date_trunc('month', now()) - interval '1 second'")
        (outcome,) = pay(make_uow, withdrawal(savings.number, "1.00"))
        assert outcome.status == "applied"

    def test_limit_is_configurable(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="100.00")
        outcomes = pay(
            make_uow,
            *[withdrawal(savings.number, "1.00") for _ in range(3)],
            policy=Policy(savings_monthly_outgoing_limit=2),
        )
        assert [o.reason for o in outcomes] == [None, None, "withdrawal_limit_reached"]


class TestIdempotency:
    def test_same_reference_same_payload_applies_once(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        first = pay(make_uow, deposit(account.number, "10.00", reference="ref-1"))[0]
        again = pay(make_uow, deposit(account.number, "10.00", reference="ref-1"))[0]
        assert (first.delivery, again.delivery) == ("first", "duplicate")
        assert again.status == "applied"
        assert balance(make_uow, account.number) == Decimal("10.00")
        assert count(make_uow, "transactions") == 1
        assert len(entries_of(make_uow, "ref-1")) == 2

    def test_duplicate_in_one_batch_applies_once(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        outcomes = pay(make_uow, *[deposit(account.number, "10.00", reference="ref-1")] * 3)
        assert [o.delivery for o in outcomes] == ["first", "duplicate", "duplicate"]
        assert balance(make_uow, account.number) == Decimal("10.00")

    def test_new_description_is_not_a_conflict(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        request = deposit(account.number, "10.00", reference="ref-1")
        pay(make_uow, request)
        (again,) = pay(make_uow, replace(request, description="salary"))
        assert again.delivery == "duplicate"

    def test_other_payload_is_a_recorded_conflict_without_effect(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        other = make_account(make_uow)
        pay(make_uow, deposit(account.number, "10.00", reference="ref-1"))
        (conflict,) = pay(make_uow, deposit(other.number, "20.00", reference="ref-1"))
        assert conflict.delivery == "conflict"
        assert (conflict.status, conflict.amount, conflict.destination) == ("applied", "10.00", account.number)
        assert conflict.conflicts[-1].fields == ("destination", "amount")
        assert (balance(make_uow, account.number), balance(make_uow, other.number)) == (Decimal("10.00"), Decimal(0))
        stored = get_outcome(make_uow(), "ref-1")
        assert [c.fields for c in stored.conflicts] == [("destination", "amount")]
        assert stored.conflicts[0].at is not None

    def test_redelivered_conflict_is_recorded_once(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        pay(make_uow, deposit(account.number, "10.00", reference="ref-1"))
        outcomes = pay(make_uow, *[deposit(account.number, "20.00", reference="ref-1")] * 2)
        (again,) = pay(make_uow, deposit(account.number, "20.00", reference="ref-1"))
        (other,) = pay(make_uow, deposit(account.number, "30.00", reference="ref-1"))
        assert [o.delivery for o in [*outcomes, again, other]] == ["conflict"] * 4
        assert count(make_uow, "transaction_conflicts") == 2
        assert [c.payload["amount"] for c in other.conflicts] == ["20.00", "30.00"]

    def test_type_change_is_a_conflict(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="50.00")
        pay(make_uow, deposit(account.number, "10.00", reference="ref-1"))
        (conflict,) = pay(make_uow, withdrawal(account.number, "10.00", reference="ref-1"))
        assert set(conflict.conflicts[-1].fields) == {"type", "source", "destination"}
        assert balance(make_uow, account.number) == Decimal("60.00")

    def test_rejected_stays_rejected(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        (first,) = pay(make_uow, withdrawal(account.number, "10.00", reference="ref-1"))
        pay(make_uow, deposit(account.number, "100.00"))
        (again,) = pay(make_uow, withdrawal(account.number, "10.00", reference="ref-1"))
        assert (first.reason, again.reason, again.delivery) == ("insufficient_funds", "insufficient_funds", "duplicate")
        assert balance(make_uow, account.number) == Decimal("100.00")

    def test_pending_until_recorded(self, make_uow: UowFactory) -> None:
        assert get_outcome(make_uow(), "never-sent").status == "pending"


class TestInvalidRequests:
    def test_invalid_request_with_a_reference_is_recorded_as_rejected(self, make_uow: UowFactory) -> None:
        request = read_fields({"reference": "bad-1", "type": "deposit", "amount": 1.5, "currency": "GBP"})
        (outcome,) = apply_payments(make_uow(), [request], Policy())
        assert (outcome.status, outcome.reason) == ("rejected", "invalid_request")
        assert (outcome.type, outcome.amount, outcome.currency) == ("deposit", None, "GBP")
        assert any(e.startswith("amount:") for e in outcome.errors)
        assert any(e.startswith("destination:") for e in outcome.errors)
        assert get_outcome(make_uow(), "bad-1").reason == "invalid_request"

    def test_invalid_then_valid_resend_is_a_conflict(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        invalid = read_fields({"reference": "bad-1", "type": "deposit", "destination": account.number})
        apply_payments(make_uow(), [invalid], Policy())
        (again,) = pay(make_uow, deposit(account.number, "5.00", reference="bad-1"))
        assert (again.reason, again.delivery) == ("invalid_request", "conflict")
        assert balance(make_uow, account.number) == Decimal(0)

    def test_unreadable_reference_cannot_be_recorded(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            read_fields({"reference": "no spaces allowed", "type": "deposit"})
        assert caught.value.reference is None


class TestBatch:
    def test_a_batch_applies_in_order_against_running_balances(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        outcomes = pay(
            make_uow,
            transfer(a.number, b.number, "10.00"),
            transfer(b.number, a.number, "4.00"),
            transfer(a.number, b.number, "5.00"),
        )
        assert [o.reason for o in outcomes] == [None, None, "insufficient_funds"]
        assert (balance(make_uow, a.number), balance(make_uow, b.number)) == (Decimal("4.00"), Decimal("6.00"))
        assert verify_ledger(make_uow()) == []

    def test_a_failed_batch_leaves_nothing_behind(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        before = count(make_uow, "transactions")
        with make_uow() as uow:
            uow.session.execute(
                sqlalchemy.text("ALTER TABLE ledger_entries ADD CONSTRAINT test_fail CHECK (amount < 0)")
            )
            uow.commit()
        try:
            with pytest.raises(sqlalchemy.exc.IntegrityError):
                pay(make_uow, deposit(account.number, "1.00"), deposit(account.number, "2.00"))
        finally:
            with make_uow() as uow:
                uow.session.execute(sqlalchemy.text("ALTER TABLE ledger_entries DROP CONSTRAINT test_fail"))
                uow.commit()
        assert count(make_uow, "transactions") == before
        assert balance(make_uow, account.number) == Decimal(0)
