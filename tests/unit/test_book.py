"""What decides: the posting rules, checked in memory on the accounts a batch holds locked."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from processor.domain.accounts import SETTLEMENT_SLOTS, Account, make_account_number, settlement_slot
from processor.domain.book import Book, Policy, Posting, month_start
from processor.domain.money import MAX_AMOUNT
from processor.domain.outcomes import Reason
from processor.domain.requests import InvalidPayment, PaymentRequest
from processor.messages import read_fields
from tests.requests import deposit, row, transfer, withdrawal
from tests.unit.builders import account

LIMIT = Policy().savings_monthly_outgoing_limit
MISSING = make_account_number(99999999)


def settlement_total(ledger: Book, currency: str) -> Decimal:
    return sum((a.balance for (c, _), a in ledger.settlement.items() if c == currency), Decimal(0))


def settlement_of(ledger: Book, account: Account) -> Account:
    """The settlement account that a customer account's deposits and withdrawals post against."""
    return ledger.settlement[account.currency, settlement_slot(account.number)]


def book(*accounts: Account, at_limit: Iterable[Account] = (), policy: Policy | None = None) -> Book:
    """A book holding the accounts and every settlement account of their currencies, some savings at their limit."""
    policy = policy or Policy()
    currencies = {a.currency for a in accounts} | {"GBP"}
    settlements = [
        account(type="settlement", currency=c, settlement_slot=slot)
        for c in sorted(currencies)
        for slot in range(SETTLEMENT_SLOTS)
    ]
    return Book.of([*accounts, *settlements], {a.id: policy.savings_monthly_outgoing_limit for a in at_limit}, policy)


class TestMonthStart:
    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            (datetime(2024, 3, 15, 13, 45, 12, 123456, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
            (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
            (datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)),
        ],
    )
    def test_utc_moment(self, moment: datetime, expected: datetime) -> None:
        start = month_start(moment, UTC)

        assert start == expected
        assert start.utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        ("moment", "expected"),
        [
            # Already March in Paris, still February in UTC.
            (datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), datetime(2024, 2, 1, tzinfo=UTC)),
            # Still February in New York, already March in UTC.
            (datetime(2024, 2, 29, 23, 30, tzinfo=timezone(timedelta(hours=-5))), datetime(2024, 3, 1, tzinfo=UTC)),
            (datetime(2025, 1, 1, 0, 59, tzinfo=timezone(timedelta(hours=1))), datetime(2024, 12, 1, tzinfo=UTC)),
            (
                datetime(2024, 6, 15, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
                datetime(2024, 6, 1, tzinfo=UTC),
            ),
        ],
    )
    def test_non_utc_moment_falls_in_its_utc_month(self, moment: datetime, expected: datetime) -> None:
        start = month_start(moment, UTC)

        assert start == expected
        assert start.utcoffset() == timedelta(0)
        assert (start.day, start.hour, start.minute, start.second, start.microsecond) == (1, 0, 0, 0, 0)

    @pytest.mark.parametrize(
        ("zone", "moment", "expected"),
        [
            # 30 November 15:30 UTC is already 1 December in Tokyo: December has begun there.
            ("Asia/Tokyo", datetime(2026, 11, 30, 15, 30, tzinfo=UTC), "2026-12-01T00:00:00+09:00"),
            ("Asia/Tokyo", datetime(2026, 11, 30, 14, 59, tzinfo=UTC), "2026-11-01T00:00:00+09:00"),
            # 1 April 03:00 UTC is still March in New York.
            ("America/New_York", datetime(2026, 4, 1, 3, 0, tzinfo=UTC), "2026-03-01T00:00:00-05:00"),
            # The offset is the one in force at the month's start: winter time on 1 March, summer time by the 20th.
            ("America/New_York", datetime(2026, 3, 20, 12, 0, tzinfo=UTC), "2026-03-01T00:00:00-05:00"),
            ("Europe/London", datetime(2026, 4, 1, 0, 30, tzinfo=UTC), "2026-04-01T00:00:00+01:00"),
            ("Europe/London", datetime(2026, 3, 31, 22, 30, tzinfo=UTC), "2026-03-01T00:00:00+00:00"),
        ],
    )
    def test_month_of_the_configured_zone(self, zone: str, moment: datetime, expected: str) -> None:
        assert month_start(moment, ZoneInfo(zone)).isoformat() == expected


class TestPolicy:
    @pytest.mark.parametrize(
        ("amount", "points"),
        [
            ("0.01", 0),
            ("9.99", 0),
            ("10.00", 1),
            ("19.99", 1),
            ("20.00", 2),
            ("125.50", 12),
            (str(MAX_AMOUNT), 99999999999),
        ],
    )
    def test_one_point_per_whole_ten(self, amount: str, points: int) -> None:
        assert Policy().reward_points(Decimal(amount)) == points

    def test_points_and_unit_are_configurable(self) -> None:
        policy = Policy(reward_points_per_unit=3, reward_unit=Decimal("5.00"))

        assert policy.reward_points(Decimal("14.99")) == 6


class TestBookApply:
    # Each precedence test builds a request that also breaks every later rule: the earlier reason must win.

    def test_invalid_request_is_decided_before_the_book_sees_the_request(self) -> None:
        closed = account(type="savings", status="closed", currency="EUR")
        message = row(source=closed.number, destination=closed.number, amount="0")

        assert isinstance(read_fields(message), InvalidPayment)
        # The same message with a valid amount would reach the book and be refused for a later reason.
        valid = read_fields({**message, "amount": "10.00"})
        assert isinstance(valid, PaymentRequest)
        assert book(closed, at_limit=[closed]).apply(valid).reason is Reason.SAME_ACCOUNT

    @pytest.mark.parametrize("exists", [True, False])
    def test_same_account(self, exists: bool) -> None:
        worst = account(type="savings", status="closed", currency="EUR")
        number = worst.number if exists else MISSING

        decision = book(worst, at_limit=[worst]).apply(transfer(number, number, currency="GBP"))

        assert decision.reason is Reason.SAME_ACCOUNT

    @pytest.mark.parametrize("missing", ["source", "destination"])
    def test_account_not_found(self, missing: str) -> None:
        worst = account(type="savings", status="closed", currency="EUR")
        source, destination = (MISSING, worst) if missing == "source" else (worst, MISSING)

        decision = book(worst, at_limit=[worst]).apply(transfer(source, destination, currency="GBP"))

        assert decision.reason is Reason.ACCOUNT_NOT_FOUND

    @pytest.mark.parametrize("kind", ["deposit", "withdrawal"])
    def test_account_not_found_for_deposit_and_withdrawal(self, kind: str) -> None:
        payment = deposit(MISSING, currency="EUR") if kind == "deposit" else withdrawal(MISSING, currency="EUR")

        assert book().apply(payment).reason is Reason.ACCOUNT_NOT_FOUND

    @pytest.mark.parametrize("mismatched", ["source", "destination"])
    def test_currency_mismatch(self, mismatched: str) -> None:
        source = account(type="savings", status="closed", currency="EUR" if mismatched == "source" else "GBP")
        destination = account(status="frozen", currency="EUR" if mismatched == "destination" else "GBP")

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination, currency="GBP"))

        assert decision.reason is Reason.CURRENCY_MISMATCH

    def test_currency_mismatch_on_deposit(self) -> None:
        closed = account(status="closed", currency="EUR")

        assert book(closed).apply(deposit(closed, currency="GBP")).reason is Reason.CURRENCY_MISMATCH

    def test_account_closed_source(self) -> None:
        source = account(type="savings", status="closed")
        destination = account(status="incoming_blocked")

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination))

        assert decision.reason is Reason.ACCOUNT_CLOSED

    def test_account_closed_destination(self) -> None:
        source = account(type="savings", status="frozen")
        destination = account(status="closed")

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination))

        assert decision.reason is Reason.ACCOUNT_CLOSED

    @pytest.mark.parametrize("status", ["dormant", "outgoing_blocked", "frozen"])
    def test_outgoing_blocked(self, status: str) -> None:
        source = account(type="savings", status=status)
        destination = account(status="incoming_blocked")

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination))

        assert decision.reason is Reason.OUTGOING_BLOCKED

    @pytest.mark.parametrize("status", ["incoming_blocked", "frozen"])
    def test_incoming_blocked(self, status: str) -> None:
        source = account(type="savings", status="active")
        destination = account(status=status)

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination))

        assert decision.reason is Reason.INCOMING_BLOCKED

    @pytest.mark.parametrize("status", ["incoming_blocked", "frozen"])
    def test_incoming_blocked_deposit(self, status: str) -> None:
        destination = account(status=status)

        assert book(destination).apply(deposit(destination)).reason is Reason.INCOMING_BLOCKED

    def test_withdrawal_limit_reached(self) -> None:
        source = account(type="savings", balance="0.00")

        assert book(source, at_limit=[source]).apply(withdrawal(source)).reason is Reason.WITHDRAWAL_LIMIT_REACHED

    def test_withdrawal_limit_reached_by_outgoing_transfer(self) -> None:
        source = account(type="savings", balance="0.00")
        destination = account()

        decision = book(source, destination, at_limit=[source]).apply(transfer(source, destination))

        assert decision.reason is Reason.WITHDRAWAL_LIMIT_REACHED

    def test_insufficient_funds(self) -> None:
        source = account(type="savings", balance="5.00")
        ledger = book(source)
        ledger.outgoing_this_month[source.id] = LIMIT - 1

        assert ledger.apply(withdrawal(source, "10.00")).reason is Reason.INSUFFICIENT_FUNDS

    def test_rejected_request_changes_nothing(self) -> None:
        source = account(type="savings", balance="5.00")
        destination = account(type="reward", balance="1.00")
        ledger = book(source, destination)

        decision = ledger.apply(transfer(source, destination, "10.00"))

        assert not decision.applied
        assert decision.postings == ()
        assert (source.balance, destination.balance) == (Decimal("5.00"), Decimal("1.00"))
        assert settlement_total(ledger, "GBP") == 0
        assert ledger.outgoing_this_month == {}
        assert ledger.changed == {}

    def test_deposit_posts_against_settlement(self) -> None:
        destination = account(balance="10.00")
        ledger = book(destination)
        settlement = settlement_of(ledger, destination)

        decision = ledger.apply(deposit(destination, "25.50"))

        assert decision.applied
        assert decision.postings == (
            Posting(settlement.id, Decimal("-25.50"), Decimal("-25.50")),
            Posting(destination.id, Decimal("25.50"), Decimal("35.50")),
        )
        assert sum(p.amount for p in decision.postings) == 0
        assert destination.balance == Decimal("35.50")
        assert settlement.balance == Decimal("-25.50")
        assert set(ledger.changed) == {settlement.id, destination.id}

    def test_withdrawal_posts_against_settlement(self) -> None:
        source = account(balance="100.00")
        ledger = book(source)
        settlement = settlement_of(ledger, source)

        decision = ledger.apply(withdrawal(source, "30.00"))

        assert decision.applied
        assert decision.postings == (
            Posting(source.id, Decimal("-30.00"), Decimal("70.00")),
            Posting(settlement.id, Decimal("30.00"), Decimal("30.00")),
        )
        assert sum(p.amount for p in decision.postings) == 0
        assert source.balance == Decimal("70.00")
        assert set(ledger.changed) == {settlement.id, source.id}

    def test_transfer_moves_money_between_the_two_accounts(self) -> None:
        source = account(balance="100.00")
        destination = account(type="savings", balance="5.00")
        ledger = book(source, destination)

        decision = ledger.apply(transfer(source, destination, "40.00"))

        assert decision.applied
        assert decision.postings == (
            Posting(source.id, Decimal("-40.00"), Decimal("60.00")),
            Posting(destination.id, Decimal("40.00"), Decimal("45.00")),
        )
        assert sum(p.amount for p in decision.postings) == 0
        assert settlement_total(ledger, "GBP") == 0
        assert set(ledger.changed) == {source.id, destination.id}

    def test_balance_after_follows_earlier_requests_of_the_batch(self) -> None:
        destination = account(balance="1.00")
        ledger = book(destination)

        ledger.apply(deposit(destination, "2.00"))
        decision = ledger.apply(deposit(destination, "3.00"))

        assert decision.postings[1].balance_after == Decimal("6.00")
        assert decision.postings[0].balance_after == Decimal("-5.00")

    def test_settlement_is_found_by_currency(self) -> None:
        destination = account(currency="EUR")
        ledger = book(destination)

        ledger.apply(deposit(destination, "7.00", currency="EUR"))

        assert settlement_of(ledger, destination).balance == Decimal("-7.00")
        assert settlement_total(ledger, "EUR") == Decimal("-7.00")
        assert settlement_total(ledger, "GBP") == 0

    def test_deposits_to_different_accounts_spread_over_the_settlement_accounts(self) -> None:
        destinations = [account() for _ in range(40)]
        ledger = book(*destinations)

        for destination in destinations:
            ledger.apply(deposit(destination, "1.00"))

        used = {a.settlement_slot for a in ledger.changed.values() if a.type == "settlement"}
        assert len(used) > 1
        assert settlement_total(ledger, "GBP") == Decimal("-40.00")

    def test_deposit_without_a_locked_settlement_account_is_an_error(self) -> None:
        destination = account(currency="USD")
        ledger = Book.of([destination], {}, Policy())

        with pytest.raises(LookupError, match=r"settlement account [0-7] for USD was not locked"):
            ledger.apply(deposit(destination, currency="USD"))

    @pytest.mark.parametrize("kind", ["withdrawal", "transfer"])
    def test_savings_outgoing_count_is_incremented(self, kind: str) -> None:
        source = account(type="savings", balance="100.00")
        destination = account()
        ledger = book(source, destination)
        ledger.outgoing_this_month[source.id] = 2
        payment = withdrawal(source) if kind == "withdrawal" else transfer(source, destination)

        assert ledger.apply(payment).applied
        assert ledger.outgoing_this_month[source.id] == 3

    def test_first_outgoing_payment_of_the_month_is_counted(self) -> None:
        source = account(type="savings", balance="100.00")
        ledger = book(source)

        ledger.apply(withdrawal(source))

        assert ledger.outgoing_this_month == {source.id: 1}

    def test_incoming_payments_and_standard_accounts_are_not_counted(self) -> None:
        savings = account(type="savings", balance="100.00")
        standard = account(balance="100.00")
        ledger = book(savings, standard)

        assert ledger.apply(deposit(savings)).applied
        assert ledger.apply(transfer(standard, savings)).applied
        assert ledger.apply(withdrawal(standard)).applied
        assert ledger.outgoing_this_month == {}

    def test_savings_limit_is_reached_within_a_batch(self) -> None:
        source = account(type="savings", balance="100.00")
        ledger = book(source, policy=Policy(savings_monthly_outgoing_limit=2))

        reasons = [ledger.apply(withdrawal(source, "1.00")).reason for _ in range(3)]

        assert reasons == [None, None, Reason.WITHDRAWAL_LIMIT_REACHED]
        assert source.balance == Decimal("98.00")

    def test_deposit_into_reward_account_earns_points(self) -> None:
        reward = account(type="reward", reward_points=3)

        book(reward).apply(deposit(reward, "125.50"))

        assert reward.reward_points == 15

    def test_deposit_below_the_unit_earns_nothing(self) -> None:
        reward = account(type="reward")

        book(reward).apply(deposit(reward, "9.99"))

        assert reward.reward_points == 0

    def test_points_follow_the_policy(self) -> None:
        reward = account(type="reward")

        book(reward, policy=Policy(reward_points_per_unit=2, reward_unit=Decimal("5.00"))).apply(deposit(reward, "12"))

        assert reward.reward_points == 4

    def test_incoming_transfer_into_reward_account_earns_no_points(self) -> None:
        source = account(balance="500.00")
        reward = account(type="reward")

        assert book(source, reward).apply(transfer(source, reward, "125.50")).applied
        assert reward.reward_points == 0

    def test_withdrawal_from_reward_account_earns_no_points(self) -> None:
        reward = account(type="reward", balance="500.00", reward_points=1)

        assert book(reward).apply(withdrawal(reward, "125.50")).applied
        assert reward.reward_points == 1

    @pytest.mark.parametrize("type", ["standard", "savings"])
    def test_deposit_into_other_types_earns_no_points(self, type: str) -> None:
        destination = account(type=type)

        assert book(destination).apply(deposit(destination, "125.50")).applied
        assert destination.reward_points == 0

    def test_standard_account_may_go_down_to_its_overdraft_limit_exactly(self) -> None:
        source = account(balance="20.00", overdraft_limit="100.00")
        ledger = book(source)

        assert ledger.apply(withdrawal(source, "120.00")).applied
        assert source.balance == Decimal("-100.00")
        assert ledger.apply(withdrawal(source, "0.01")).reason is Reason.INSUFFICIENT_FUNDS
        assert source.balance == Decimal("-100.00")

    def test_standard_account_cannot_go_one_cent_past_its_overdraft_limit(self) -> None:
        source = account(balance="20.00", overdraft_limit="100.00")

        assert book(source).apply(withdrawal(source, "120.01")).reason is Reason.INSUFFICIENT_FUNDS
        assert source.balance == Decimal("20.00")

    @pytest.mark.parametrize("type", ["savings", "reward"])
    def test_savings_and_reward_may_go_down_to_zero_but_not_below(self, type: str) -> None:
        source = account(type=type, balance="50.00")
        ledger = book(source)

        assert ledger.apply(withdrawal(source, "50.01")).reason is Reason.INSUFFICIENT_FUNDS
        assert ledger.apply(withdrawal(source, "50.00")).applied
        assert source.balance == 0

    @pytest.mark.parametrize("role", ["deposit", "withdrawal", "transfer_source", "transfer_destination"])
    def test_settlement_account_number_is_not_a_payment_account(self, role: str) -> None:
        customer = account(balance="100.00")
        ledger = book(customer)
        settlement = settlement_of(ledger, customer).number
        payment = {
            "deposit": lambda: deposit(settlement),
            "withdrawal": lambda: withdrawal(settlement),
            "transfer_source": lambda: transfer(settlement, customer),
            "transfer_destination": lambda: transfer(customer, settlement),
        }[role]()

        assert ledger.apply(payment).reason is Reason.ACCOUNT_NOT_FOUND
        assert settlement_total(ledger, "GBP") == 0
        assert customer.balance == Decimal("100.00")

    def test_account_id_is_known_only_for_customer_accounts_in_the_book(self) -> None:
        customer = account()
        ledger = book(customer)

        assert ledger.account_id(customer.number) == customer.id
        assert ledger.account_id(MISSING) is None
        assert ledger.account_id(settlement_of(ledger, customer).number) is None
        assert ledger.account_id(None) is None
