"""Poison messages on the queue: each has no effect, is handled once, and the worker goes on serving.

docs/architecture.md: JSON only, keyword arguments only; a message that cannot be validated is recorded
as rejected/invalid_request when its reference can be read, held for operators when not, and never retried in a loop.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import redis
import sqlalchemy
from celery import Celery

from processor.db.engine import get_engine
from processor.domain.accounts import Account
from processor.domain.held import HeldMessage, HeldReason
from processor.domain.outcomes import Outcome, OutcomeStatus, Reason
from processor.messages import QUEUE
from processor.services.held import list_held
from processor.services.payments import get_outcome
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account
from tests.e2e.conftest import StartWorker, Worker
from tests.e2e.faults import account_locked, wait_for_lock_waiters
from tests.requests import unique

T = TypeVar("T")
WAIT = 15.0
OPENING_BALANCE = Decimal("100.00")
# Kombu's Redis transport keeps a delivered but unacknowledged message in these keys until it is acked.
UNACKED_KEYS = ("unacked", "unacked_index", "unacked_mutex")
# What a worker logs when a message comes back to it: a crash, a consumer restart, a redelivery.
LOOP_SIGNS = ("Unrecoverable error", "Connection to broker lost", "Restoring", "RestartFreqExceeded")


@pytest.fixture(autouse=True)
def empty_broker(broker_url: str) -> Iterator[None]:
    """An empty queue before and after each test, so that a poison message left behind reaches no later worker.

    Autouse fixtures are set up first and torn down last: this runs after start_worker has stopped the workers,
    which give their unacknowledged messages back to the queue as they stop.
    """
    client = redis.Redis.from_url(broker_url)
    client.delete(QUEUE, *UNACKED_KEYS)
    yield
    client.delete(QUEUE, *UNACKED_KEYS)
    client.close()


@dataclass
class Bank:
    """One funded account, one worker (concurrency 1, so messages are handled in the order sent), a producer."""

    make_uow: UowFactory
    producer: Celery
    broker_url: str
    database_url: str
    worker: Worker
    account: Account
    funding: set[str]  # the references recorded in setting up: the account's opening deposit

    def send(self, task: str, *, args: tuple[object, ...] = (), kwargs: dict[str, Any] | None = None) -> str:
        """Send by task name as any producer would; returns the task id."""
        result = self.producer.send_task(task, args=args, kwargs=kwargs or {}, queue=QUEUE)
        return str(result.id)

    def deposit_kwargs(self, **fields: object) -> dict[str, Any]:
        """A valid deposit's kwargs with a fresh reference, changed by `fields`."""
        valid = {"reference": unique("poison"), "account": self.account.number, "amount": "10.00", "currency": "GBP"}
        return valid | fields

    def publish_raw(self, body: bytes, headers: dict[str, object]) -> None:
        """Publish bytes as they are, the way a producer that is not Celery might."""
        with self.producer.producer_or_acquire() as kombu_producer:
            kombu_producer.publish(
                body,
                exchange="",
                routing_key=QUEUE,
                content_type="application/json",
                content_encoding="utf-8",
                headers=headers,
            )

    def wait_outcome(self, reference: str) -> Outcome:
        return self._wait(lambda: _recorded(get_outcome(self.make_uow(), reference)), f"an outcome for {reference}")

    def wait_held(self, task_id: str) -> HeldMessage:
        return self._wait(
            lambda: next((h for h in list_held(self.make_uow()) if h.task_id == task_id), None),
            f"a held message for task {task_id}",
        )

    def _wait(self, probe: Callable[[], T | None], what: str) -> T:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = probe()
            if found is not None:
                return found
            # A dead or looping worker answers nothing: fail now, with its log, rather than at the deadline.
            assert self.worker.process.poll() is None, f"worker died waiting for {what}:\n{self.worker.output()}"
            self.assert_no_redelivery()
            time.sleep(0.1)
        raise AssertionError(f"no {what} after {WAIT} s:\n{self.worker.output()[-5000:]}")

    def assert_no_redelivery(self) -> None:
        log = self.worker.output()
        assert not [sign for sign in LOOP_SIGNS if sign in log], log[-5000:]

    def assert_harmless(self, recorded: set[str], task_id: str | None = None, logged_once: str | None = None) -> None:
        """The poison sent before had no effect but `recorded`, came once, and the worker still applies deposits.

        The follow-up deposit is sent after the poison; the one worker takes messages in order, so by the time the
        deposit is applied the poison has been handled.
        """
        follow_up = unique("after-poison")
        self.send("payments.deposit", kwargs=self.deposit_kwargs(reference=follow_up, amount="1.00"))
        assert self.wait_outcome(follow_up).status is OutcomeStatus.APPLIED
        assert self.worker.process.poll() is None

        assert recorded_references(self.database_url) == self.funding | recorded | {follow_up}
        assert balance(self.make_uow, self.account.number) == OPENING_BALANCE + Decimal("1.00")
        assert verify_ledger(self.make_uow()) == []

        self.assert_no_redelivery()
        # The follow-up's outcome commits before its message is acked (acks late): give the ack a moment.
        client = redis.Redis.from_url(self.broker_url)
        try:
            self._wait(lambda: client.llen(QUEUE) == client.hlen("unacked") == 0 or None, "an empty queue")
        finally:
            client.close()
        log = self.worker.output()
        if task_id is not None:
            assert log.count(f"[{task_id}] received") == 1, log[-5000:]
            assert f"[{task_id}] retry" not in log
        if logged_once is not None:
            assert log.count(logged_once) == 1, log[-5000:]


def recorded_references(database_url: str) -> set[str]:
    with get_engine(database_url).connect() as connection:
        return set(connection.execute(sqlalchemy.text("SELECT reference FROM transactions")).scalars())


def _recorded(outcome: Outcome) -> Outcome | None:
    return None if outcome.status is OutcomeStatus.PENDING else outcome


@pytest.fixture
def bank(make_uow: UowFactory, producer: Celery, start_worker: StartWorker, broker_url: str, database_url: str) -> Bank:
    account = make_account(make_uow, balance=str(OPENING_BALANCE))
    funding = recorded_references(database_url)
    return Bank(make_uow, producer, broker_url, database_url, start_worker(concurrency=1), account, funding)


def headers(**fields: object) -> dict[str, object]:
    """Celery protocol 2 headers for a payments.deposit message."""
    return {"id": str(uuid.uuid4()), "task": "payments.deposit", "lang": "py"} | fields


def protocol2_body(kwargs: dict[str, object], options: object = None) -> bytes:
    """A protocol 2 body: [args, kwargs, options]."""
    return json.dumps([[], kwargs, options or {}]).encode()


def assert_rejected_as_invalid(outcome: Outcome) -> None:
    assert outcome.status is OutcomeStatus.REJECTED
    assert outcome.reason is Reason.INVALID_REQUEST


def assert_held_once(bank: Bank, task: str, reference: str | None = None) -> None:
    """Held once, with the reference found in the body (if any) so an operator can search for it."""
    [held] = list_held(bank.make_uow())
    assert (held.reason, held.task, held.reference) == (HeldReason.UNREADABLE, task, reference)


# Celery 5.7 builds a request in the worker's main process; without processor.celery.guarded_strategy these
# shapes ended the worker ('Unrecoverable error') or restarted its consumer in a loop, each time giving the
# message back to the queue for the next worker.
MALFORMED = "Received invalid task message: malformed payments.deposit message"


class TestRefusedBeforeTheTask:
    """Messages Celery itself refuses: they never reach a payment task. Those it reports are held for operators."""

    def test_pickled_message_is_refused_and_held(self, bank: Bank) -> None:
        bank.producer.send_task(
            "payments.deposit", kwargs=bank.deposit_kwargs(reference="pickled"), queue=QUEUE, serializer="pickle"
        )

        bank.assert_harmless(
            recorded=set(), logged_once="Received invalid task message: Refusing to deserialize untrusted content"
        )
        assert_held_once(bank, "payments.deposit")

    @pytest.mark.parametrize(
        ("body", "message_headers", "logged_once", "held"),
        # held: (task, reference) of the held record, or None when Celery gives no signal to hold it by.
        [
            pytest.param(b"{not json", headers(), "Can't decode message body", None, id="body-not-json"),
            pytest.param(
                protocol2_body({"reference": "no-headers"}),
                {},
                "Received and deleted unknown message",
                ("(none)", "no-headers"),
                id="no-headers",
            ),
            pytest.param(
                protocol2_body({"reference": "garbage-headers"}),
                {"task": 5, "id": [], "lang": None},
                "Received unregistered task of type 5",
                ("5", "garbage-headers"),
                id="garbage-headers",
            ),
            pytest.param(
                protocol2_body({"reference": "junk-options"}, options="junk"),
                headers(),
                "Pool callback raised exception",
                None,
                id="options-not-a-mapping",
            ),
            pytest.param(
                json.dumps([1, 2, 3, 4]).encode(), headers(), MALFORMED, ("payments.deposit", None), id="list-of-four"
            ),
            pytest.param(
                json.dumps({"reference": "kwargs-as-body"}).encode(),
                headers(),
                MALFORMED,
                ("payments.deposit", None),
                id="kwargs-as-body",
            ),
            pytest.param(
                protocol2_body({"reference": "no-id"}),
                {"task": "payments.deposit", "lang": "py"},
                MALFORMED,
                ("payments.deposit", "no-id"),
                id="task-header-without-id",
            ),
        ],
    )
    def test_malformed_message_is_dropped(
        self,
        bank: Bank,
        body: bytes,
        message_headers: dict[str, object],
        logged_once: str,
        held: tuple[str, str | None] | None,
    ) -> None:
        bank.publish_raw(body, message_headers)

        bank.assert_harmless(recorded=set(), logged_once=logged_once)
        if held is None:
            # Celery reports these through no signal (an undecodable body) or only after acking (bad options).
            assert list_held(bank.make_uow()) == []
        else:
            assert_held_once(bank, *held)

    def test_unknown_task_name_is_dropped_and_held(self, bank: Bank) -> None:
        bank.send("payments.refund", kwargs=bank.deposit_kwargs(reference="refund-1"))

        bank.assert_harmless(recorded=set(), logged_once="Received unregistered task of type 'payments.refund'")
        assert_held_once(bank, "payments.refund", "refund-1")


class TestSendersCannotSetDeadlines:
    """A payment a sender gave an expiry or a time limit is applied under the worker's own limits."""

    @pytest.mark.parametrize(
        "options",
        [
            pytest.param({"expires": datetime.now(UTC) - timedelta(hours=1)}, id="expired"),
            pytest.param({"time_limit": 0.001, "soft_time_limit": 0.001}, id="time-limit"),
        ],
    )
    def test_the_payment_is_applied(self, bank: Bank, options: dict[str, object]) -> None:
        kwargs = bank.deposit_kwargs()
        bank.producer.send_task("payments.deposit", kwargs=kwargs, queue=QUEUE, **options)

        outcome = bank.wait_outcome(kwargs["reference"])
        assert (outcome.status, outcome.reason) == ("applied", None)
        assert "Discarding revoked task" not in bank.worker.output()
        assert list_held(bank.make_uow()) == []

    def test_a_revoked_payment_is_applied_and_a_running_one_is_not_killed(self, bank: Bank) -> None:
        revoked = bank.deposit_kwargs()
        revoked_id = str(uuid.uuid4())
        # reply=True: the worker has the id in its revoked set before the message is sent.
        assert bank.producer.control.revoke(revoked_id, reply=True, timeout=10), "no worker answered the revoke"
        bank.producer.send_task("payments.deposit", kwargs=revoked, queue=QUEUE, task_id=revoked_id)
        assert bank.wait_outcome(revoked["reference"]).status is OutcomeStatus.APPLIED

        running = bank.deposit_kwargs()
        with account_locked(bank.database_url, bank.account.number):
            running_id = bank.send("payments.deposit", kwargs=running)
            wait_for_lock_waiters(bank.database_url, 1, bank.worker)
            bank.producer.control.revoke(running_id, terminate=True, signal="SIGKILL", reply=True, timeout=10)
        assert bank.wait_outcome(running["reference"]).status is OutcomeStatus.APPLIED

        log = bank.worker.output()
        assert "Discarding revoked task" not in log
        assert f"payment.revoke_ignored task=payments.deposit task_id={revoked_id}" in log
        assert f"payment.terminate_ignored task=payments.deposit task_id={running_id}" in log
        assert balance(bank.make_uow, bank.account.number) == OPENING_BALANCE + Decimal("20.00")
        assert list_held(bank.make_uow()) == []


class TestHeldForOperators:
    """No reference can be read, so no outcome can be recorded: the message is held, once, for operators."""

    @pytest.mark.parametrize(
        ("args", "kwargs", "error"),
        [
            pytest.param(("refund-2", "10.00"), {}, "args: 2 positional argument(s)", id="positional-args"),
            pytest.param((), {"amount": "10.00", "currency": "GBP"}, "reference: is required", id="no-reference"),
            pytest.param((), {"reference": "bad ref"}, "reference: 'bad ref' is not", id="unreadable-reference"),
        ],
    )
    def test_message_without_readable_reference_is_held(
        self, bank: Bank, args: tuple[object, ...], kwargs: dict[str, object], error: str
    ) -> None:
        task_id = bank.send("payments.deposit", args=args, kwargs=kwargs)

        held = bank.wait_held(task_id)
        assert (held.reason, held.task, held.reference) == (
            HeldReason.UNREADABLE,
            "payments.deposit",
            kwargs.get("reference"),
        )
        assert error in held.error
        bank.assert_harmless(recorded=set(), task_id=task_id)
        assert [h.task_id for h in list_held(bank.make_uow())] == [task_id]


class TestRejectedAsInvalid:
    """The reference can be read: the request is recorded as rejected/invalid_request with its errors."""

    def test_positional_args_next_to_a_reference_are_rejected(self, bank: Bank) -> None:
        kwargs = bank.deposit_kwargs()
        task_id = bank.send("payments.deposit", args=("10.00",), kwargs=kwargs)

        outcome = bank.wait_outcome(kwargs["reference"])
        assert_rejected_as_invalid(outcome)
        assert outcome.errors == ("args: 1 positional argument(s); payments.deposit takes keyword arguments only",)
        bank.assert_harmless(recorded={kwargs["reference"]}, task_id=task_id)

    @pytest.mark.parametrize("task", ["payments.deposit", "payments.batch"])
    def test_a_kwarg_named_self_is_rejected_not_a_bug(self, bank: Bank, task: str) -> None:
        kwargs = bank.deposit_kwargs()
        if task == "payments.batch":
            payment = {"type": "deposit", "destination": kwargs.pop("account"), **kwargs}
            task_id = bank.send(task, kwargs={"payments": [payment], "self": 1})
            held = bank.wait_held(task_id)
            assert (held.reason, held.task) == (HeldReason.UNREADABLE, task)
            assert "unexpected field(s) for payments.batch: self" in held.error
            return
        task_id = bank.send(task, kwargs={**kwargs, "self": 1})

        outcome = bank.wait_outcome(kwargs["reference"])
        assert_rejected_as_invalid(outcome)
        assert outcome.errors == ("message: unexpected field(s) for payments.deposit: 'self'",)
        bank.assert_harmless(recorded={kwargs["reference"]}, task_id=task_id)

    @pytest.mark.parametrize("amount", [1.5, "1.234", "-5", "0", "NaN"])
    def test_amount_that_is_not_a_positive_decimal_string_is_rejected(self, bank: Bank, amount: object) -> None:
        kwargs = bank.deposit_kwargs(amount=amount)
        task_id = bank.send("payments.deposit", kwargs=kwargs)

        outcome = bank.wait_outcome(kwargs["reference"])
        assert_rejected_as_invalid(outcome)
        [error] = outcome.errors
        assert error.startswith("amount: ")
        bank.assert_harmless(recorded={kwargs["reference"]}, task_id=task_id)

    def test_megabyte_description_is_rejected_and_stored_clipped(self, bank: Bank) -> None:
        kwargs = bank.deposit_kwargs(description="x" * 1_000_000)
        task_id = bank.send("payments.deposit", kwargs=kwargs)

        outcome = bank.wait_outcome(kwargs["reference"])
        assert_rejected_as_invalid(outcome)
        [error] = outcome.errors
        assert error.startswith("description: ")
        with get_engine(bank.database_url).connect() as connection:
            row_size, payload_size, description = connection.execute(
                sqlalchemy.text(
                    "SELECT octet_length(t::text), octet_length(payload::text), payload->>'description'"
                    " FROM transactions t WHERE reference = :reference"
                ),
                {"reference": kwargs["reference"]},
            ).one()
        assert row_size < 5_000
        assert payload_size < 5_000
        assert description.endswith("(1000000 characters)")
        bank.assert_harmless(recorded={kwargs["reference"]}, task_id=task_id)

    def test_ten_thousand_junk_keys_give_one_error(self, bank: Bank) -> None:
        kwargs = bank.deposit_kwargs() | {f"junk{i}": i for i in range(10_000)}
        task_id = bank.send("payments.deposit", kwargs=kwargs)

        outcome = bank.wait_outcome(kwargs["reference"])
        assert_rejected_as_invalid(outcome)
        assert outcome.errors == (
            "message: unexpected field(s) for payments.deposit: 'junk0', 'junk1', 'junk2', 'junk3', 'junk4'"
            " and 9995 more",
        )
        bank.assert_harmless(recorded={kwargs["reference"]}, task_id=task_id)
