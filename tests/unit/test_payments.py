from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from processor.domain.accounts import Account, make_account_number
from processor.domain.errors import InvalidRequest
from processor.domain.money import MAX_AMOUNT
from processor.domain.payments import (
    Book,
    InvalidPayment,
    PaymentRequest,
    PaymentType,
    Policy,
    Posting,
    Reason,
    differing_fields,
    month_start,
    parse_or_invalid,
    parse_payment,
)
from tests.unit.builders import account

_references = itertools.count(1)
LIMIT = Policy().savings_monthly_outgoing_limit
A = make_account_number(20000001)
B = make_account_number(20000002)
MISSING = make_account_number(99999999)


def book(*accounts: Account, at_limit: Iterable[Account] = (), policy: Policy | None = None) -> Book:
    """A book holding the accounts and a settlement account per currency, some savings at their monthly limit."""
    policy = policy or Policy()
    currencies = {a.currency for a in accounts} | {"GBP"}
    settlements = [account(type="settlement", currency=c) for c in sorted(currencies)]
    return Book.of([*accounts, *settlements], {a.id: policy.savings_monthly_outgoing_limit for a in at_limit}, policy)


def request(
    type: PaymentType,
    amount: str,
    currency: str,
    source: Account | str | None = None,
    destination: Account | str | None = None,
) -> PaymentRequest:
    return PaymentRequest(
        reference=f"ref-{next(_references)}",
        type=type,
        amount=Decimal(amount),
        currency=currency,
        source=source.number if isinstance(source, Account) else source,
        destination=destination.number if isinstance(destination, Account) else destination,
    )


def deposit(destination: Account | str, amount: str = "10.00", currency: str = "GBP") -> PaymentRequest:
    return request(PaymentType.DEPOSIT, amount, currency, destination=destination)


def withdrawal(source: Account | str, amount: str = "10.00", currency: str = "GBP") -> PaymentRequest:
    return request(PaymentType.WITHDRAWAL, amount, currency, source=source)


def transfer(
    source: Account | str, destination: Account | str, amount: str = "10.00", currency: str = "GBP"
) -> PaymentRequest:
    return request(PaymentType.TRANSFER, amount, currency, source=source, destination=destination)


def fields(**overrides: object) -> dict[str, object]:
    """The fields of a valid transfer message, with some replaced."""
    return {
        "reference": "ref-1",
        "type": "transfer",
        "source": A,
        "destination": B,
        "amount": "125.50",
        "currency": "GBP",
        "description": "rent",
        **overrides,
    }


def errors_of(message: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        parse_payment(message)
    return [(e.field, e.message) for e in caught.value.errors]


class TestParsePayment:
    def test_valid_deposit(self) -> None:
        message = {"reference": "dep-1", "type": "deposit", "destination": A, "amount": "10", "currency": "GBP"}

        assert parse_payment(message) == PaymentRequest(
            "dep-1", PaymentType.DEPOSIT, Decimal("10.00"), "GBP", source=None, destination=A
        )

    def test_valid_withdrawal_with_empty_fields_from_a_csv_row(self) -> None:
        message = fields(type="withdrawal", destination="", description="")

        assert parse_payment(message) == PaymentRequest(
            "ref-1", PaymentType.WITHDRAWAL, Decimal("125.50"), "GBP", source=A, destination=None, description=None
        )

    def test_valid_transfer(self) -> None:
        assert parse_payment(fields(amount=125)) == PaymentRequest(
            "ref-1", PaymentType.TRANSFER, Decimal("125.00"), "GBP", source=A, destination=B, description="rent"
        )

    @pytest.mark.parametrize("reference", ["a" * 64, "A", "Az09._:-", "2024-11-24:batch.7_row-3"])
    def test_reference_of_allowed_characters_is_accepted(self, reference: str) -> None:
        assert parse_payment(fields(reference=reference)).reference == reference

    def test_unknown_type(self) -> None:
        assert errors_of(fields(type="refund")) == [
            ("type", "'refund' is not a payment type (one of: deposit, withdrawal, transfer)")
        ]

    def test_missing_destination_for_deposit(self) -> None:
        assert errors_of(fields(type="deposit", source=None, destination=None)) == [
            ("destination", "is required for a deposit")
        ]

    def test_source_given_for_deposit(self) -> None:
        assert errors_of(fields(type="deposit")) == [("source", "must be empty for a deposit")]

    def test_missing_source_for_withdrawal(self) -> None:
        message = fields(type="withdrawal", destination=None)
        del message["source"]

        assert errors_of(message) == [("source", "is required for a withdrawal")]

    def test_destination_given_for_withdrawal(self) -> None:
        assert errors_of(fields(type="withdrawal")) == [("destination", "must be empty for a withdrawal")]

    @pytest.mark.parametrize("field", ["source", "destination"])
    def test_missing_account_for_transfer(self, field: str) -> None:
        assert errors_of(fields(**{field: ""})) == [(field, "is required for a transfer")]

    @pytest.mark.parametrize("field", ["source", "destination"])
    def test_mistyped_account_number(self, field: str) -> None:
        mistyped = A[:-1] + str((int(A[-1]) + 1) % 10)

        [(name, message)] = errors_of(fields(**{field: mistyped}))

        assert name == field
        assert "check digit mismatch" in message

    def test_account_number_that_is_not_digits(self) -> None:
        [(name, message)] = errors_of(fields(destination="GB12ABCD"))

        assert name == "destination"
        assert "8 to 16 digits" in message

    @pytest.mark.parametrize(
        ("amount", "why"),
        [
            (1.5, "binary float"),
            ("0", "greater than zero"),
            ("-5", "must be positive"),
            ("1.234", "more than two decimal places"),
            ("abc", "not a decimal string"),
            (None, "NoneType"),
        ],
    )
    def test_bad_amount(self, amount: object, why: str) -> None:
        [(name, message)] = errors_of(fields(amount=amount))

        assert name == "amount"
        assert why in message

    @pytest.mark.parametrize("currency", ["gbp", "GB", "POUNDS", None])
    def test_bad_currency(self, currency: object) -> None:
        [(name, message)] = errors_of(fields(currency=currency))

        assert name == "currency"
        assert "three capital letters" in message

    @pytest.mark.parametrize("reference", ["", "a" * 65, "has space", "ref/1", "réf", None, 123])
    def test_bad_reference(self, reference: object) -> None:
        [(name, message)] = errors_of(fields(reference=reference))

        assert name == "reference"
        assert "1 to 64 characters" in message

    def test_description_over_500_characters(self) -> None:
        assert errors_of(fields(description="x" * 501)) == [("description", "must be text of at most 500 characters")]

    def test_several_errors_are_reported_at_once(self) -> None:
        message = fields(reference="has space", source=A[:-1], destination=None, amount="-1", currency="pounds")

        with pytest.raises(InvalidRequest) as caught:
            parse_payment(message)

        assert sorted(e.field for e in caught.value.errors) == [
            "amount",
            "currency",
            "destination",
            "reference",
            "source",
        ]
        assert all(f"{e.field}: {e.message}" in str(caught.value) for e in caught.value.errors)

    def test_empty_message_reports_every_required_field(self) -> None:
        assert sorted(name for name, _ in errors_of({})) == ["amount", "currency", "reference", "type"]

    def test_invalid_request_carries_a_valid_reference(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            parse_payment(fields(reference="ref-9", amount="0"))

        assert caught.value.reference == "ref-9"

    def test_invalid_request_has_no_reference_when_it_cannot_be_read(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            parse_payment(fields(reference="a" * 65, amount="0"))

        assert caught.value.reference is None


class TestParseOrInvalid:
    def test_valid_message_is_a_request(self) -> None:
        assert parse_or_invalid(fields()) == parse_payment(fields())

    def test_readable_reference_gives_an_invalid_payment(self) -> None:
        message = fields(reference="ref-7", amount="1.234")

        invalid = parse_or_invalid(message)

        assert isinstance(invalid, InvalidPayment)
        assert invalid.reference == "ref-7"
        assert invalid.fields == message
        assert [e.field for e in invalid.errors] == ["amount"]

    def test_unreadable_reference_raises(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            parse_or_invalid(fields(reference="has space", amount="1.234"))

        assert caught.value.reference is None
        assert sorted(e.field for e in caught.value.errors) == ["amount", "reference"]

    def test_invalid_payment_payload_turns_non_json_values_into_text(self) -> None:
        invalid = parse_or_invalid(fields(amount=float("nan"), currency=Decimal("1")))

        assert isinstance(invalid, InvalidPayment)
        assert invalid.payload()["amount"] == "nan"
        assert invalid.payload()["currency"] == "1"
        assert invalid.payload()["source"] == A

    def test_invalid_payment_payload_keeps_a_float_a_float(self) -> None:
        # Stored as text, 1.5 would read back as a valid "1.5" and hide why the request was refused.
        invalid = parse_or_invalid(fields(amount=1.5))

        assert isinstance(invalid, InvalidPayment)
        assert invalid.payload()["amount"] == 1.5


class TestFingerprint:
    def test_same_identity_gives_the_same_fingerprint(self) -> None:
        assert parse_payment(fields()).fingerprint() == parse_payment(fields()).fingerprint()

    def test_description_does_not_change_it(self) -> None:
        first = parse_payment(fields(description="rent"))
        second = parse_payment(fields(description="rent for March"))

        assert first.fingerprint() == second.fingerprint()
        assert first.payload() != second.payload()

    @pytest.mark.parametrize(("first", "second"), [("10.5", "10.50"), ("10", "10.00"), (10, "10.00")])
    def test_equal_amounts_written_differently_give_the_same_fingerprint(self, first: object, second: object) -> None:
        assert parse_payment(fields(amount=first)).fingerprint() == parse_payment(fields(amount=second)).fingerprint()

    @pytest.mark.parametrize(
        "change",
        [
            {"type": "withdrawal", "destination": None},
            {"source": make_account_number(20000003)},
            {"destination": make_account_number(20000003)},
            {"amount": "125.51"},
            {"currency": "EUR"},
        ],
    )
    def test_any_identity_field_changes_it(self, change: dict[str, object]) -> None:
        assert parse_payment(fields(**change)).fingerprint() != parse_payment(fields()).fingerprint()

    def test_same_invalid_message_gives_the_same_fingerprint(self) -> None:
        first = parse_or_invalid(fields(amount="abc", description="one"))
        second = parse_or_invalid(fields(amount="abc", description="two"))
        third = parse_or_invalid(fields(amount="abd"))

        assert first.fingerprint() == second.fingerprint()
        assert first.fingerprint() != third.fingerprint()


class TestDifferingFields:
    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({}, []),
            ({"description": "something else"}, []),
            ({"amount": "125.5"}, []),
            ({"amount": "125.51"}, ["amount"]),
            ({"currency": "EUR"}, ["currency"]),
            ({"source": make_account_number(20000003)}, ["source"]),
            ({"destination": make_account_number(20000003)}, ["destination"]),
            ({"type": "withdrawal", "destination": None}, ["type", "destination"]),
            ({"type": "deposit", "source": None}, ["type", "source"]),
            ({"amount": "1.00", "currency": "EUR", "description": "x"}, ["amount", "currency"]),
        ],
    )
    def test_names_exactly_the_fields_that_differ(self, change: dict[str, object], expected: list[str]) -> None:
        recorded = parse_payment(fields()).payload()
        attempt = parse_payment(fields(**change)).payload()

        assert differing_fields(recorded, attempt) == expected

    def test_invalid_attempt_against_a_valid_record(self) -> None:
        recorded = parse_payment(fields()).payload()
        attempt = parse_or_invalid(fields(amount="lots"))

        assert isinstance(attempt, InvalidPayment)
        assert differing_fields(recorded, attempt.payload()) == ["amount"]


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
        start = month_start(moment)

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
        start = month_start(moment)

        assert start == expected
        assert start.utcoffset() == timedelta(0)
        assert (start.day, start.hour, start.minute, start.second, start.microsecond) == (1, 0, 0, 0, 0)


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
        message = fields(source=closed.number, destination=closed.number, amount="0")

        assert isinstance(parse_or_invalid(message), InvalidPayment)
        # The same message with a valid amount would reach the book and be refused for a later reason.
        valid = parse_payment({**message, "amount": "10.00"})
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
        assert ledger.settlement["GBP"].balance == 0
        assert ledger.outgoing_this_month == {}
        assert ledger.changed == {}

    def test_deposit_posts_against_settlement(self) -> None:
        destination = account(balance="10.00")
        ledger = book(destination)
        settlement = ledger.settlement["GBP"]

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
        settlement = ledger.settlement["GBP"]

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
        assert ledger.settlement["GBP"].balance == 0
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

        assert ledger.settlement["EUR"].balance == Decimal("-7.00")
        assert ledger.settlement["GBP"].balance == 0

    def test_deposit_without_a_locked_settlement_account_is_an_error(self) -> None:
        destination = account(currency="USD")
        ledger = Book.of([destination], {}, Policy())

        with pytest.raises(LookupError, match="settlement account for USD was not locked"):
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
        settlement = ledger.settlement["GBP"].number
        payment = {
            "deposit": lambda: deposit(settlement),
            "withdrawal": lambda: withdrawal(settlement),
            "transfer_source": lambda: transfer(settlement, customer),
            "transfer_destination": lambda: transfer(customer, settlement),
        }[role]()

        assert ledger.apply(payment).reason is Reason.ACCOUNT_NOT_FOUND
        assert ledger.settlement["GBP"].balance == 0
        assert customer.balance == Decimal("100.00")

    def test_account_id_is_known_only_for_customer_accounts_in_the_book(self) -> None:
        customer = account()
        ledger = book(customer)

        assert ledger.account_id(customer.number) == customer.id
        assert ledger.account_id(MISSING) is None
        assert ledger.account_id(ledger.settlement["GBP"].number) is None
        assert ledger.account_id(None) is None
