"""How `submit file` cuts a burst of payments into payments.batch messages."""

from __future__ import annotations

import pytest

from processor.domain.accounts import make_account_number
from processor.messages import BATCH_MAX, PaymentMessage, Transfer, batch_kwargs, build
from submit.batch import group_by_account

PAYERS = [make_account_number(30000000 + n) for n in range(40)]
PAYEE = make_account_number(39999999)


def transfers(count: int) -> list[PaymentMessage]:
    return [
        build(
            Transfer,
            reference=f"g-{n}",
            source=PAYERS[n % len(PAYERS)],
            destination=PAYEE,
            amount="1.00",
            currency="GBP",
        )
        for n in range(count)
    ]


class TestGroupByAccount:
    def test_every_payment_is_in_exactly_one_batch_of_at_most_the_size(self) -> None:
        messages = transfers(4000)

        batches = group_by_account(messages, 1000)

        assert all(1 <= len(b) <= 1000 for b in batches)
        assert sorted(m.reference for b in batches for m in b) == sorted(m.reference for m in messages)

    def test_a_paying_account_is_in_few_batches_of_a_burst(self) -> None:
        # In file order every payer would be in all four batches; grouped, a payer is in its group's batches only,
        # and a group holds more than one batch only when the hash gives it more than its share.
        batches = group_by_account(transfers(4000), 1000)

        for payer in PAYERS:
            assert sum(any(m.request().source == payer for m in b) for b in batches) <= 2

    def test_file_order_is_kept_within_a_batch(self) -> None:
        for batch in group_by_account(transfers(500), 100):
            numbers = [int(m.reference.removeprefix("g-")) for m in batch]
            assert numbers == sorted(numbers)


class TestBatchKwargs:
    def test_items_are_payment_file_rows(self) -> None:
        [message] = transfers(1)

        assert batch_kwargs([message]) == {
            "payments": [
                {
                    "reference": "g-0",
                    "type": "transfer",
                    "source": PAYERS[0],
                    "destination": PAYEE,
                    "amount": "1.00",
                    "currency": "GBP",
                }
            ]
        }

    def test_more_than_the_maximum_is_refused(self) -> None:
        messages = transfers(BATCH_MAX + 1)

        with pytest.raises(ValueError, match="1 to 1000"):
            batch_kwargs(messages)
