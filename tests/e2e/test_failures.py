"""Failures a real worker must survive without losing or doubling a payment: a killed worker, a killed pool child,
a database that goes away, and a request whose retries run out."""

from __future__ import annotations

import os
import re
import signal
from decimal import Decimal

from celery import Celery

from processor.domain.accounts import Account
from processor.domain.held import HeldReason
from processor.domain.outcomes import OutcomeStatus
from processor.services.accounts import get_account
from processor.services.held import list_held
from processor.services.payments import get_outcome, get_outcomes
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import StartWorker, Worker, wait_for_outcomes
from tests.e2e.faults import (
    account_locked,
    broker_is_idle,
    database_outage,
    database_refusing_connections,
    recorded_count,
    send_with_ids,
    unacked_messages,
    wait_for_lock_waiters,
    wait_until,
    wait_until_recorded,
)
from tests.e2e.test_queue import bank
from tests.e2e.traffic import Message, Traffic, assert_exactly_once, mixed_traffic, send

# The e2e workers' backoff is capped at 2 s, so 12 retries can all fall within a few seconds of each other (full
# jitter may pick 0 s); an outage test that means "nothing is lost" gives them enough room not to run out.
OUTAGE_RETRIES = "40"
WORKER_LOST = re.compile(r"retry: Retry in [\d.]+s: WorkerLostError")
DATABASE_RETRY = re.compile(r"retry: Retry in [\d.]+s: OperationalError")
SUCCEEDED = re.compile(r"\] succeeded in ")


def assert_settled_exactly_once(
    make_uow: UowFactory, broker_url: str, accounts: list[Account], traffic: Traffic, workers: list[Worker]
) -> None:
    """Wait until every reference has its outcome and every message sent has run, then check exactly-once."""
    wait_for_outcomes(make_uow, traffic.references, timeout=60, workers=workers)
    # Resends and redelivered messages may still be in flight once every reference has its outcome.
    wait_until(lambda: broker_is_idle(broker_url), 60, "every message run and acked", workers)
    assert_exactly_once(make_uow, accounts, traffic, get_outcomes(make_uow(), traffic.references))
    assert list_held(make_uow()) == []


def deposit_message(account: str, reference: str, amount: str = "10.00") -> Message:
    return "payments.deposit", {"reference": reference, "account": account, "amount": amount, "currency": "GBP"}


def retries_spent(make_uow: UowFactory, reference: str) -> bool:
    """Whether the reference is held for operators because its retries were spent."""
    return any(h.reason is HeldReason.RETRIES_SPENT and h.reference == reference for h in list_held(make_uow()))


def task_logged(worker: Worker, task_id: str, pattern: re.Pattern[str]) -> bool:
    """Whether the worker logged a line about the task that matches."""
    return any(f"[{task_id}]" in line and pattern.search(line) for line in worker.output().splitlines())


class TestWorkerCrash:
    def test_sigkill_of_whole_worker_with_unacked_messages_loses_and_doubles_nothing(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        accounts = bank(make_uow)
        contended = accounts[0]
        traffic = mixed_traffic(accounts, 500, "crash")
        # The one-by-one path, whose prefetch of 1 strands exactly the messages being applied; the grouped path's
        # crashes are in test_grouping.py.
        first = start_worker(PROCESSOR_LOCK_TIMEOUT="4", PROCESSOR_GROUP_SIZE="1")
        send(producer, traffic.all())
        wait_until_recorded(make_uow, traffic.references, 50, first)

        # Mid-run, hold one account so that both pool children soon wait inside a task that touches it: the kill
        # lands mid-task, with the worker's whole prefetch (2) delivered and unacked. A full prefetch also means no
        # BRPOP is pending: kombu's Redis transport takes a message off the queue before it records it as unacked,
        # and a kill in between loses that message for good (celery/celery#7950), which no worker setting prevents.
        with account_locked(database_url, contended.number):
            wait_for_lock_waiters(database_url, 2, first)
            first.kill()
        stranded = unacked_messages(broker_url)
        applied_by_first = recorded_count(make_uow, traffic.references)
        assert 0 < applied_by_first < len(traffic.references), "the kill did not land mid-run"
        assert len(stranded) == 2, stranded
        assert all(contended.number in message.accounts for message in stranded), stranded

        second = start_worker()
        assert_settled_exactly_once(make_uow, broker_url, accounts, traffic, [first, second])
        # Each message the killed worker held came back after the visibility timeout and ran to its end.
        for message in stranded:
            assert task_logged(second, message.task_id, SUCCEEDED), message

    def test_sigkill_of_a_pool_child_mid_task_is_retried_once_in_effect(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        accounts = bank(make_uow)
        contended = make_account(make_uow)
        blocked = [deposit_message(contended.number, f"blocked-{n}") for n in range(2)]
        traffic = mixed_traffic(accounts, 300, "child")
        # Lock waits outlast the few moments it takes to see both pool children waiting and kill one.
        worker = start_worker(concurrency=2, PROCESSOR_LOCK_TIMEOUT="4", PROCESSOR_GROUP_SIZE="1")

        with account_locked(database_url, contended.number):
            blocked_ids = send_with_ids(producer, blocked)
            send(producer, traffic.all())
            # Both children are inside a task, waiting for the lock: whichever is killed dies mid-task.
            wait_for_lock_waiters(database_url, 2, worker)
            os.kill(worker.children()[0], signal.SIGKILL)

        everything = Traffic([*blocked, *traffic.originals], traffic.duplicates, traffic.conflicts)
        assert_settled_exactly_once(make_uow, broker_url, [*accounts, contended], everything, [worker])
        [lost] = [task_id for task_id in blocked_ids if task_logged(worker, task_id, WORKER_LOST)]
        assert task_logged(worker, lost, SUCCEEDED)
        assert worker.process.poll() is None


class TestDatabaseOutage:
    def test_database_unreachable_during_a_run_loses_and_doubles_nothing(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        accounts = bank(make_uow)
        traffic = mixed_traffic(accounts, 400, "outage")
        worker = start_worker(PROCESSOR_RETRY_MAX=OUTAGE_RETRIES)
        send(producer, traffic.all())
        wait_until_recorded(make_uow, traffic.references, 20, worker)

        database_outage(database_url, seconds=4)
        assert recorded_count(make_uow, traffic.references) < len(traffic.references), "the outage came too late"

        assert_settled_exactly_once(make_uow, broker_url, accounts, traffic, [worker])
        assert DATABASE_RETRY.search(worker.output()), "no task met the outage"

    def test_worker_started_while_database_is_unreachable_applies_once_it_is_back(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        accounts = bank(make_uow)
        traffic = mixed_traffic(accounts, 60, "cold")
        with database_refusing_connections(database_url):
            worker = start_worker(PROCESSOR_RETRY_MAX=OUTAGE_RETRIES)
            send(producer, traffic.all())
            wait_until(lambda: bool(DATABASE_RETRY.search(worker.output())), 10, "a retry", [worker])

        assert_settled_exactly_once(make_uow, broker_url, accounts, traffic, [worker])


class TestRetriesSpent:
    def test_request_whose_retries_are_spent_is_held_without_outcome(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, broker_url: str
    ) -> None:
        account = make_account(make_uow, balance="100.00")
        message = deposit_message(account.number, "spent-1", amount="25.00")
        worker = start_worker(PROCESSOR_RETRY_MAX="1", PROCESSOR_LOCK_TIMEOUT="0.5")

        with account_locked(database_url, account.number):
            send(producer, [message])
            wait_until(lambda: retries_spent(make_uow, "spent-1"), 20, "the request held", [worker])
            assert get_outcome(make_uow(), "spent-1").status is OutcomeStatus.PENDING
        assert DATABASE_RETRY.search(worker.output())

        send(producer, [message])
        [outcome] = wait_for_outcomes(make_uow, ["spent-1"], timeout=20, workers=[worker]).values()
        wait_until(lambda: broker_is_idle(broker_url), 20, "the resend run and acked", [worker])
        assert outcome.status is OutcomeStatus.APPLIED
        assert get_account(make_uow(), account.number).balance == Decimal("125.00")
        assert verify_ledger(make_uow()) == []
