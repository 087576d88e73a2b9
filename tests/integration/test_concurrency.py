"""Real threads, real connections: the races that locks and the unique reference must win."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TypeVar

import sqlalchemy

from processor.domain.accounts import AccountStatus
from processor.domain.outcomes import Outcome
from processor.domain.requests import PaymentRequest
from processor.messages import read_fields
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account, pay
from tests.requests import deposit, transfer, withdrawal

THREADS = 8
T = TypeVar("T")


def race(workers: int, job: Callable[[int], T]) -> list[T]:
    """Run job(i) on `workers` threads released together; any exception (a deadlock, say) fails the test."""
    start = threading.Barrier(workers)

    def run(i: int) -> T:
        start.wait()
        return job(i)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, range(workers)))


def pay_each(make_uow: UowFactory, requests: list[PaymentRequest]) -> list[Outcome]:
    return [pay(make_uow, r)[0] for r in requests]


class TestOppositeTransfers:
    def test_200_opposite_transfers_finish_without_deadlock_and_conserve_money(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="1000.00")
        b = make_account(make_uow, balance="1000.00")
        per_thread = 200 // THREADS

        def job(i: int) -> list[Outcome]:
            forth, back = (a, b) if i % 2 else (b, a)
            return pay_each(
                make_uow,
                [
                    transfer(forth.number, back.number, "7.00")
                    if n % 2
                    else transfer(back.number, forth.number, "3.00")
                    for n in range(per_thread)
                ],
            )

        outcomes = [o for batch in race(THREADS, job) for o in batch]
        assert len(outcomes) == 200
        assert all(o.status == "applied" for o in outcomes)
        assert balance(make_uow, a.number) + balance(make_uow, b.number) == Decimal("2000.00")
        assert verify_ledger(make_uow()) == []

    def test_batches_naming_the_same_accounts_in_opposite_orders(self, make_uow: UowFactory) -> None:
        accounts = [make_account(make_uow, balance="100.00") for _ in range(4)]
        numbers = [x.number for x in accounts]

        def job(i: int) -> list[Outcome]:
            order = numbers if i % 2 else numbers[::-1]
            results: list[Outcome] = []
            for _ in range(10):
                batch = [transfer(order[k], order[(k + 1) % 4], "1.00") for k in range(4)]
                results += pay(make_uow, *batch)
            return results

        outcomes = [o for batch in race(THREADS, job) for o in batch]
        assert Counter(o.status for o in outcomes) == {"applied": THREADS * 40}
        assert sum(balance(make_uow, n) for n in numbers) == Decimal("400.00")
        assert verify_ledger(make_uow()) == []


class TestSameReferenceRace:
    def test_same_reference_from_many_threads_has_one_effect(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        outcomes = race(THREADS, lambda i: pay(make_uow, deposit(account.number, "10.00", reference="race-1"))[0])
        assert Counter(o.delivery for o in outcomes) == {"first": 1, "duplicate": THREADS - 1}
        assert balance(make_uow, account.number) == Decimal("10.00")
        assert verify_ledger(make_uow()) == []

    def test_racing_payloads_leave_one_effect_and_record_the_rest_as_conflicts(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        outcomes = race(THREADS, lambda i: pay(make_uow, deposit(account.number, f"{i + 1}.00", reference="race-1"))[0])
        (winner,) = [o for o in outcomes if o.delivery == "first"]
        assert Counter(o.delivery.value for o in outcomes)["conflict"] == THREADS - 1
        assert balance(make_uow, account.number) == Decimal(winner.amount or "")
        assert {o.amount for o in outcomes} == {winner.amount}

    def test_batches_sharing_references_in_opposite_orders_do_not_deadlock(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        rounds, size = 10, 6

        def job(i: int) -> list[Outcome]:
            results: list[Outcome] = []
            for n in range(rounds):
                batch = [deposit(account.number, "1.00", reference=f"shared-{n}-{k}") for k in range(size)]
                results += pay(make_uow, *(batch if i % 2 else batch[::-1]))
            return results

        outcomes = [o for batch in race(THREADS, job) for o in batch]
        assert Counter(o.delivery for o in outcomes) == {
            "first": rounds * size,
            "duplicate": (THREADS - 1) * rounds * size,
        }
        assert balance(make_uow, account.number) == Decimal(rounds * size)


class TestSameReferenceOnOtherAccounts:
    """Racers that share no account meet only at the reference's unique index: the loser decides again."""

    def test_racing_payloads_to_other_accounts_leave_one_effect(self, make_uow: UowFactory) -> None:
        accounts = [make_account(make_uow) for _ in range(THREADS)]
        outcomes = race(THREADS, lambda i: pay(make_uow, deposit(accounts[i].number, "5.00", reference="race-2"))[0])
        (winner,) = [o for o in outcomes if o.delivery == "first"]
        assert Counter(o.delivery.value for o in outcomes)["conflict"] == THREADS - 1
        balances = [balance(make_uow, a.number) for a in accounts]
        assert sorted(balances) == [Decimal("0.00")] * (THREADS - 1) + [Decimal("5.00")]
        assert balance(make_uow, winner.destination or "") == Decimal("5.00")
        assert verify_ledger(make_uow()) == []

    def test_racing_invalid_requests_are_recorded_once(self, make_uow: UowFactory) -> None:
        invalid = read_fields({"reference": "race-3", "type": "deposit", "amount": "1.234", "currency": "GBP"})
        outcomes = race(THREADS, lambda i: pay(make_uow, invalid)[0])
        assert Counter(o.delivery for o in outcomes) == {"first": 1, "duplicate": THREADS - 1}
        assert {o.reason for o in outcomes} == {"invalid_request"}

    def test_batches_sharing_references_over_other_accounts_do_not_deadlock(self, make_uow: UowFactory) -> None:
        accounts = [make_account(make_uow) for _ in range(THREADS)]
        rounds, size = 10, 6

        def job(i: int) -> list[Outcome]:
            results: list[Outcome] = []
            for n in range(rounds):
                batch = [deposit(accounts[i].number, "1.00", reference=f"spread-{n}-{k}") for k in range(size)]
                results += pay(make_uow, *(batch if i % 2 else batch[::-1]))
            return results

        outcomes = [o for batch in race(THREADS, job) for o in batch]
        deliveries = Counter(o.delivery.value for o in outcomes)
        assert deliveries["first"] == rounds * size
        assert deliveries["duplicate"] + deliveries["conflict"] == (THREADS - 1) * rounds * size
        assert sum(balance(make_uow, a.number) for a in accounts) == Decimal(rounds * size)
        assert verify_ledger(make_uow()) == []


class TestConflictsRace:
    def test_batches_recording_the_same_conflicts_in_opposite_orders_do_not_deadlock(
        self, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)
        references = [f"conflicted-{n}" for n in range(100)]
        pay(make_uow, *(deposit(account.number, "1.00", reference=r) for r in references))
        # Invalid resends lock no account, so nothing but the conflict rows' own order queues these batches.
        resends = [read_fields({"reference": r, "type": "deposit", "amount": "bad"}) for r in references]

        def job(i: int) -> list[Outcome]:
            results: list[Outcome] = []
            for _ in range(5):
                results += pay(make_uow, *(resends if i % 2 else resends[::-1]))
            return results

        outcomes = [o for batch in race(THREADS, job) for o in batch]
        assert {o.delivery.value for o in outcomes} == {"conflict"}
        with make_uow() as uow:
            stored = uow.session.scalar(sqlalchemy.text("SELECT count(*) FROM transaction_conflicts"))
        assert stored == len(references)
        assert balance(make_uow, account.number) == Decimal(len(references))


class TestStatusChangeMeetsPayment:
    def test_payment_waiting_for_the_lock_sees_the_status_committed_meanwhile(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="10.00")
        with make_uow() as operator, ThreadPoolExecutor(1) as pool:
            (locked,) = operator.accounts.get_for_update([account.number])
            waiting = pool.submit(lambda: pay(make_uow, withdrawal(account.number, "1.00"))[0])
            wait_for_a_lock_wait(make_uow)
            operator.accounts.set_status(locked.id, AccountStatus.FROZEN)
            operator.commit()
            outcome = waiting.result(timeout=30)
        assert outcome.reason == "outgoing_blocked"
        assert balance(make_uow, account.number) == Decimal("10.00")


def wait_for_a_lock_wait(make_uow: UowFactory) -> None:
    """Return once some session of this database is waiting for a lock (the payment, queued behind us)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with make_uow() as uow:
            waiting = uow.session.scalar(
                sqlalchemy.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the payment never waited for the account lock")


class TestSavingsUnderConcurrentWithdrawals:
    def test_floor_holds(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="100.00")
        outcomes = race(12, lambda i: pay(make_uow, withdrawal(savings.number, "30.00"))[0])
        assert Counter(o.reason for o in outcomes) == {None: 3, "insufficient_funds": 9}
        assert balance(make_uow, savings.number) == Decimal("10.00")

    def test_monthly_limit_holds(self, make_uow: UowFactory) -> None:
        savings = make_account(make_uow, type="savings", balance="1000.00")
        other = make_account(make_uow)

        def job(i: int) -> Outcome:
            request = withdrawal(savings.number, "1.00") if i % 2 else transfer(savings.number, other.number, "1.00")
            return pay(make_uow, request)[0]

        outcomes = race(12, job)
        assert Counter(o.reason for o in outcomes) == {None: 6, "withdrawal_limit_reached": 6}
        assert balance(make_uow, savings.number) == Decimal("994.00")
        assert verify_ledger(make_uow()) == []
