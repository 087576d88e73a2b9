"""Grouped apply in a real worker (processor/grouping.py): single-payment messages applied many to a transaction,
and every way a group can fail sending its messages the normal way, one by one, with nothing lost or doubled."""

from __future__ import annotations

import os
import re
import signal
from decimal import Decimal

from celery import Celery

from processor.domain.accounts import Account
from processor.domain.held import HeldReason
from processor.domain.outcomes import OutcomeStatus, Reason
from processor.messages import QUEUE
from processor.services.accounts import get_account
from processor.services.held import list_held
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import StartWorker, Worker, wait_for_outcomes
from tests.e2e.faults import (
    account_locked,
    broker_is_idle,
    recorded_count,
    unacked_messages,
    wait_for_lock_waiters,
    wait_until,
)
from tests.e2e.test_failures import assert_settled_exactly_once, deposit_message
from tests.e2e.test_queue import bank
from tests.e2e.traffic import Message, Traffic, mixed_traffic, send

GROUP_APPLIED = re.compile(r"payment\.group_applied size=(\d+)")
GROUP_FALLBACK = re.compile(r"payment\.group_fallback size=(\d+) error=(.*)")
# A burst sent at once becomes one group: it is smaller than the group and arrives well within the wait.
ONE_GROUP = {"PROCESSOR_GROUP_SIZE": "50", "PROCESSOR_GROUP_WAIT_MS": "300"}
BURST = 20
# A group waits on a test's row lock for longer than the test takes to act on it; the visibility timeout is as
# short as the settings allow, so that a killed worker's messages come back within seconds.
LOCK_HELD = {
    "PROCESSOR_LOCK_TIMEOUT": "5",
    "PROCESSOR_STATEMENT_TIMEOUT": "5.5",
    "PROCESSOR_TASK_TIME_LIMIT": "7",
    "PROCESSOR_VISIBILITY_TIMEOUT": "10",
}


def group_sizes(worker: Worker) -> list[int]:
    """The size of each group the worker applied in one transaction."""
    return [int(size) for size in GROUP_APPLIED.findall(worker.output())]


def fallbacks(worker: Worker) -> list[tuple[int, str]]:
    """Each group that fell back to its messages one by one: its size and why."""
    return [(int(size), error) for size, error in GROUP_FALLBACK.findall(worker.output())]


def touching(hot: Account, others: list[Account], prefix: str, count: int = BURST) -> Traffic:
    """Payments that all touch the hot account, so that one row lock on it holds their whole group."""
    messages: list[Message] = []
    for n in range(count):
        other = others[n % len(others)].number
        common = {"reference": f"{prefix}-{n}", "amount": f"{n + 1}.00", "currency": "GBP"}
        if n % 3 == 0:
            messages.append(("payments.deposit", {**common, "account": hot.number}))
        elif n % 3 == 1:
            messages.append(("payments.transfer", {**common, "source": hot.number, "destination": other}))
        else:
            messages.append(("payments.transfer", {**common, "source": other, "destination": hot.number}))
    return Traffic(messages)


def hot_bank(make_uow: UowFactory) -> tuple[Account, list[Account]]:
    return make_account(make_uow, balance="1000.00"), [make_account(make_uow, balance="500.00") for _ in range(3)]


class TestGroupedApply:
    def test_five_hundred_mixed_messages_are_applied_in_groups_once_each(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, broker_url: str
    ) -> None:
        accounts = bank(make_uow)
        traffic = mixed_traffic(accounts, 500, "grouped")
        worker = start_worker(concurrency=2)

        send(producer, traffic.all())

        assert_settled_exactly_once(make_uow, broker_url, accounts, traffic, [worker])
        sizes = group_sizes(worker)
        assert max(sizes) > 1, worker.output()[-5000:]
        # Most messages were applied many to a transaction, the rest (redelivered, or alone in a lull) one by one.
        assert sum(sizes) > len(traffic.all()) // 2, sizes
        print(
            f"\n{len(sizes)} groups, largest {max(sizes)}, {sum(sizes)} of {len(traffic.all())} messages grouped,"
            f" {len(fallbacks(worker))} fallbacks"
        )


class TestGroupFallback:
    def test_message_that_cannot_join_sends_its_group_the_normal_way(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, broker_url: str
    ) -> None:
        account = make_account(make_uow, balance="100.00")
        valid = [deposit_message(account.number, f"joins-{n}", amount="1.00") for n in range(30)]
        unreadable = {"reference": "bad ref", "account": account.number, "amount": "1.00", "currency": "GBP"}
        positional = {"reference": "positional-1", "account": account.number, "amount": "1.00", "currency": "GBP"}
        # A longer wait than ONE_GROUP's, so that a loaded machine (the suite runs in several processes) still
        # gathers most of the burst into the group that meets the bad message.
        worker = start_worker(**{**ONE_GROUP, "PROCESSOR_GROUP_WAIT_MS": "1500"})

        send(producer, valid[:15])
        bad_id = producer.send_task("payments.deposit", kwargs=unreadable, queue=QUEUE).id
        # Positional arguments never join a group: the message goes the normal way at once.
        producer.send_task("payments.deposit", args=("1.00",), kwargs=positional, queue=QUEUE)
        send(producer, valid[15:])

        references = [kwargs["reference"] for _, kwargs in valid]
        outcomes = wait_for_outcomes(make_uow, [*references, "positional-1"], timeout=30, workers=[worker])
        wait_until(lambda: broker_is_idle(broker_url), 30, "every message run and acked", [worker])
        assert {outcomes[r].status for r in references} == {OutcomeStatus.APPLIED}
        assert (outcomes["positional-1"].status, outcomes["positional-1"].reason) == (
            OutcomeStatus.REJECTED,
            Reason.INVALID_REQUEST,
        )
        [held] = list_held(make_uow())
        assert (held.reason, held.task_id, held.reference) == (HeldReason.UNREADABLE, bad_id, "bad ref")
        # Only the group that met the bad message fell back; how many joined it before it closed is timing.
        [(size, error)] = fallbacks(worker)
        assert 1 < size <= 31
        assert "InvalidRequest" in error
        assert get_account(make_uow(), account.number).balance == Decimal("130.00")
        assert verify_ledger(make_uow()) == []


class TestGroupCrash:
    def test_sigkill_of_whole_worker_with_a_group_waiting_loses_and_doubles_nothing(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        hot, others = hot_bank(make_uow)
        traffic = touching(hot, others, "killed")
        first = start_worker(**ONE_GROUP, **LOCK_HELD)

        with account_locked(database_url, hot.number):
            send(producer, traffic.all())
            # The whole burst is one group, waiting inside the database for the hot account.
            wait_for_lock_waiters(database_url, 1, first)
            first.kill()
        assert recorded_count(make_uow, traffic.references) == 0
        assert len(unacked_messages(broker_url)) == BURST

        second = start_worker(**LOCK_HELD)
        assert_settled_exactly_once(make_uow, broker_url, [hot, *others], traffic, [first, second])

    def test_sigkill_of_the_pool_process_running_a_group_falls_back_once_in_effect(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        hot, others = hot_bank(make_uow)
        traffic = touching(hot, others, "child")
        # One pool process, so that the one running the group is the one killed.
        worker = start_worker(concurrency=1, **ONE_GROUP, **LOCK_HELD)

        with account_locked(database_url, hot.number):
            send(producer, traffic.all())
            wait_for_lock_waiters(database_url, 1, worker)
            [child] = worker.children()
            os.kill(child, signal.SIGKILL)
            wait_until(lambda: bool(fallbacks(worker)), 10, "the group falling back", [worker])

        assert_settled_exactly_once(make_uow, broker_url, [hot, *others], traffic, [worker])
        [(size, error)] = fallbacks(worker)
        assert (size, "WorkerLostError" in error) == (BURST, True), error
        assert worker.process.poll() is None

    def test_worker_stopped_between_commit_and_acks_redelivers_duplicates_only(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        hot, others = hot_bank(make_uow)
        traffic = touching(hot, others, "unacked")
        first = start_worker(**ONE_GROUP, **LOCK_HELD)

        with account_locked(database_url, hot.number):
            send(producer, traffic.all())
            wait_for_lock_waiters(database_url, 1, first)
            # Stopped, the main process cannot read the group's result, so it acks nothing.
            os.kill(first.process.pid, signal.SIGSTOP)
        # The lock is gone: the pool process commits the group and sends its result to no one.
        wait_until(lambda: recorded_count(make_uow, traffic.references) == BURST, 10, "the group committed", [first])
        assert len(unacked_messages(broker_url)) == BURST
        first.kill()

        second = start_worker(**LOCK_HELD)
        assert_settled_exactly_once(make_uow, broker_url, [hot, *others], traffic, [first, second])
        # Each message came back and found its committed outcome: a duplicate, with no effect of its own.
        log = second.output()
        assert [r for r in traffic.references if f"payment.duplicate reference={r} " not in log] == []


class TestWarmShutdown:
    def test_group_still_gathering_at_shutdown_is_left_unacked_for_the_next_worker(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, broker_url: str
    ) -> None:
        account = make_account(make_uow, balance="100.00")
        messages = [deposit_message(account.number, f"gathering-{n}", amount="1.00") for n in range(5)]
        references = [kwargs["reference"] for _, kwargs in messages]
        first = start_worker(PROCESSOR_GROUP_WAIT_MS="60000")
        send(producer, messages)
        wait_until(lambda: len(unacked_messages(broker_url)) == len(messages), 10, "the group gathering", [first])

        first.stop()
        assert "payment.group_left_unacked size=5" in first.output()
        assert recorded_count(make_uow, references) == 0

        second = start_worker()
        wait_for_outcomes(make_uow, references, timeout=20, workers=[first, second])
        wait_until(lambda: broker_is_idle(broker_url), 20, "every message run and acked", [second])
        assert get_account(make_uow(), account.number).balance == Decimal("105.00")
        assert verify_ledger(make_uow()) == []
