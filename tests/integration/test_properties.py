"""Whatever arrives, in whatever order and batching, the books balance and each reference has one outcome."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.domain.accounts import make_account_number
from processor.domain.book import Policy
from processor.domain.outcomes import Outcome
from processor.domain.requests import InvalidPayment, PaymentRequest
from processor.messages import read_fields
from processor.services.payments import apply_payments
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account
from tests.conftest import empty_tables

UNKNOWN_ACCOUNT = make_account_number(99999999)  # well-formed, never opened
ACCOUNT_SETUPS: list[dict[str, str]] = [
    {"type": "standard", "balance": "50.00", "overdraft_limit": "25.00"},
    {"type": "savings", "balance": "80.00"},
    {"type": "reward", "balance": "10.00"},
    {"type": "standard", "balance": "30.00", "status": "frozen"},
    {"type": "standard", "balance": "30.00", "status": "incoming_blocked"},
    {"type": "savings", "balance": "0.00", "status": "closed"},
]

amounts = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("120.00"), places=2).map(str),
    st.sampled_from(["0", "-5.00", "1.234", "abc", "NaN"]),
)
account_slots = st.integers(min_value=0, max_value=len(ACCOUNT_SETUPS))  # the last slot is the unknown account
raw_requests = st.fixed_dictionaries(
    {
        "reference": st.sampled_from([f"ref-{i}" for i in range(12)]),
        "type": st.sampled_from(["deposit", "withdrawal", "transfer", "refund"]),
        "source": account_slots,
        "destination": account_slots,
        "amount": amounts,
        "currency": st.sampled_from(["GBP", "GBP", "GBP", "EUR"]),
    }
)


def reset(make_uow: UowFactory, database_url: str) -> list[str]:
    empty_tables(database_url)
    return [make_account(make_uow, **setup).number for setup in ACCOUNT_SETUPS] + [UNKNOWN_ACCOUNT]  # type: ignore[arg-type]


def to_request(raw: dict[str, object], numbers: list[str]) -> PaymentRequest | InvalidPayment:
    fields = dict(raw)
    for side, needed in (("source", ("withdrawal", "transfer")), ("destination", ("deposit", "transfer"))):
        slot = raw[side]
        assert isinstance(slot, int)
        fields[side] = numbers[slot] if raw["type"] in needed else None
    return read_fields(fields)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(raw_requests, min_size=1, max_size=6), min_size=1, max_size=5))
def test_any_sequence_of_requests_keeps_the_ledger_valid(
    make_uow: UowFactory, database_url: str, batches: list[list[dict[str, object]]]
) -> None:
    numbers = reset(make_uow, database_url)
    expected = {number: balance(make_uow, number) for number in numbers[:-1]}
    policy = Policy(savings_monthly_outgoing_limit=3)
    first: dict[str, Outcome] = {}
    for batch in batches:
        requests = [to_request(raw, numbers) for raw in batch]
        outcomes = apply_payments(make_uow(), requests, policy)
        assert [o.reference for o in outcomes] == [r.reference for r in requests]
        for request, outcome in zip(requests, outcomes, strict=True):
            original = first.setdefault(request.reference, outcome)
            if outcome is not original:
                # A repeat changes nothing: it reports the outcome recorded the first time.
                assert outcome.delivery in ("duplicate", "conflict")
                assert (outcome.status, outcome.reason) == (original.status, original.reason)
                continue
            assert outcome.delivery == "first"
            if isinstance(request, InvalidPayment):
                assert outcome.reason == "invalid_request"
            elif request.type == "deposit" and request.destination == numbers[0] and request.currency == "GBP":
                assert outcome.status == "applied"  # an active standard account takes any deposit in its currency
            if outcome.status == "applied":
                assert isinstance(request, PaymentRequest)
                if request.source:
                    expected[request.source] -= request.amount
                if request.destination:
                    expected[request.destination] += request.amount

    assert {number: balance(make_uow, number) for number in expected} == expected
    assert verify_ledger(make_uow()) == []
    with make_uow() as uow:
        recorded = uow.session.scalar(sqlalchemy.text("SELECT count(*) FROM transactions WHERE reference LIKE 'ref-%'"))
    assert recorded == len(first)
