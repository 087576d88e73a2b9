"""payments.batch: many payments in one message and one transaction, each with its own outcome, as if sent alone."""

from __future__ import annotations

import time
from decimal import Decimal

from celery import Celery

from processor.domain.held import HeldMessage
from processor.domain.money import MAX_AMOUNT
from processor.messages import BATCH_TASK, QUEUE
from processor.services.held import list_held
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account, tamper
from tests.e2e.conftest import StartWorker, wait_for_outcomes


def send_batch(producer: Celery, payments: list[dict[str, object]], **options: object) -> str:
    result = producer.send_task(BATCH_TASK, kwargs={"payments": payments}, queue=QUEUE, **options)
    return str(result.id)


def deposit_row(reference: str, account: str, amount: str = "10.00") -> dict[str, object]:
    return {"reference": reference, "type": "deposit", "destination": account, "amount": amount, "currency": "GBP"}


def wait_for_held(make_uow: UowFactory, count: int, timeout: float = 60.0) -> list[HeldMessage]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = list_held(make_uow(), limit=100)
        if len(held) >= count:
            return held
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} held messages after {timeout} s")


class TestBatchMessages:
    def test_each_payment_of_a_batch_has_its_own_outcome(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker
    ) -> None:
        source = make_account(make_uow, balance="100.00")
        destination = make_account(make_uow)
        payments: list[dict[str, object]] = [
            deposit_row("b-1", destination.number, "10.00"),
            {
                "reference": "b-2",
                "type": "transfer",
                "source": source.number,
                "destination": destination.number,
                "amount": "60.00",
                "currency": "GBP",
            },
            {"reference": "b-3", "type": "withdrawal", "source": source.number, "amount": "60.00", "currency": "GBP"},
            {
                "reference": "b-4",
                "type": "deposit",
                "destination": destination.number,
                "amount": "1.234",
                "currency": "GBP",
            },
            deposit_row("b-1", destination.number, "10.00"),  # the same payment twice in one batch
            deposit_row("b-5", destination.number, "99.00"),
            deposit_row("b-5", destination.number, "98.00"),  # the same reference with another amount
        ]
        worker = start_worker()

        send_batch(producer, payments)
        outcomes = wait_for_outcomes(make_uow, ["b-1", "b-2", "b-3", "b-4", "b-5"], workers=[worker])

        assert {r: (o.status.value, o.reason) for r, o in outcomes.items()} == {
            "b-1": ("applied", None),
            "b-2": ("applied", None),
            "b-3": ("rejected", "insufficient_funds"),
            "b-4": ("rejected", "invalid_request"),
            "b-5": ("applied", None),
        }
        assert [c.fields for c in outcomes["b-5"].conflicts] == [("amount",)]
        assert balance(make_uow, destination.number) == Decimal("169.00")
        assert balance(make_uow, source.number) == Decimal("40.00")
        assert verify_ledger(make_uow()) == []

    def test_a_redelivered_batch_has_no_second_effect(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker
    ) -> None:
        account = make_account(make_uow)
        payments = [deposit_row(f"again-{n}", account.number, "1.00") for n in range(1000)]
        worker = start_worker()

        send_batch(producer, payments)
        send_batch(producer, payments)
        wait_for_outcomes(make_uow, [str(p["reference"]) for p in payments], workers=[worker])
        time.sleep(2)  # the second batch applies after the first: it must change nothing

        assert balance(make_uow, account.number) == Decimal("1000.00")
        assert verify_ledger(make_uow()) == []

    def test_an_unreadable_item_is_held_and_the_others_apply(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker
    ) -> None:
        account = make_account(make_uow)
        payments: list[dict[str, object]] = [
            deposit_row("ok-1", account.number),
            {"reference": "has space", "type": "deposit", "destination": account.number, "amount": "5.00"},
            deposit_row("ok-2", account.number),
        ]
        worker = start_worker()

        send_batch(producer, payments)
        wait_for_outcomes(make_uow, ["ok-1", "ok-2"], workers=[worker])
        [held] = wait_for_held(make_uow, 1)

        assert held.reason == "unreadable"
        assert held.task == BATCH_TASK
        assert held.message["reference"] == "has space"
        assert balance(make_uow, account.number) == Decimal("20.00")

    def test_a_malformed_batch_is_held_whole(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str
    ) -> None:
        start_worker()

        producer.send_task(BATCH_TASK, kwargs={"payments": []}, queue=QUEUE)
        [held] = wait_for_held(make_uow, 1)

        assert held.reason == "unreadable"
        assert "1 to 1000 payments" in held.error

    def test_a_payment_that_fails_the_batch_for_good_is_held_and_the_others_apply(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str
    ) -> None:
        accounts = [make_account(make_uow) for _ in range(4)]
        full = accounts[2]
        # A balance at the column's limit: one more deposit overflows NUMERIC(20, 2), an error no retry can fix.
        # No series of payments gets there in a test's time, and the database refuses a balance without its
        # entries (migration 0004), so it is set past the guards.
        tamper(make_uow, "UPDATE accounts SET balance = 999999999999999999.99 WHERE number = :n", n=full.number)
        payments: list[dict[str, object]] = [deposit_row(f"iso-{n}", a.number, "1.00") for n, a in enumerate(accounts)]
        payments[2]["amount"] = str(MAX_AMOUNT)
        # References may look like an item's place in the batch: the unreadable item 1 and the failing payment
        # whose reference is "1" are two holds, not one.
        payments[2]["reference"] = "1"
        payments.insert(1, {"type": "deposit", "destination": accounts[0].number, "amount": "1.00"})
        worker = start_worker()

        send_batch(producer, payments)
        outcomes = wait_for_outcomes(make_uow, ["iso-0", "iso-1", "iso-3"], workers=[worker])
        unreadable, failed = sorted(wait_for_held(make_uow, 2), key=lambda h: h.reason, reverse=True)

        assert {o.status.value for o in outcomes.values()} == {"applied"}
        assert (failed.reason, failed.reference) == ("failed", "1")
        assert (unreadable.reason, unreadable.reference) == ("unreadable", None)
        for account in (accounts[0], accounts[1], accounts[3]):
            assert balance(make_uow, account.number) == Decimal("1.00")
