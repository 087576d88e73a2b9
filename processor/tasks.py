"""The payment tasks (docs/architecture.md): validate the message, call one service, return the outcome."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict, TypeVar

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task
from celery.signals import task_failure, task_rejected, task_unknown, worker_process_init
from kombu.message import Message

from processor.bootstrap import worker_engines, worker_unit_of_work
from processor.celery import GuardedTask, app
from processor.config import get_settings
from processor.db.transient import is_transient
from processor.domain.errors import InvalidRequest
from processor.domain.held import HeldMessage, HeldReason
from processor.domain.outcomes import Delivery, Outcome
from processor.domain.requests import InvalidPayment, PaymentRequest
from processor.logs import log_event
from processor.messages import BATCH_TASK, MESSAGES, batch_item, read, read_batch
from processor.presenters import OutcomeJson, outcome_json
from processor.services.held import hold_message, hold_messages
from processor.services.payments import apply_payments

_settings = get_settings()
R = TypeVar("R")
PAYMENT_TASKS = (*MESSAGES, BATCH_TASK)


class HeldResult(TypedDict):
    status: str
    held: int
    reason: str
    errors: list[str]


TaskResult = OutcomeJson | HeldResult


class BatchResult(TypedDict):
    """Counts, not outcomes: a batch's outcomes are in the ledger, and Flower shows what a task returns."""

    status: str
    payments: int
    applied: int
    rejected: int
    duplicates: int
    conflicts: int
    held: int


# Celery's own call chain names its first parameter `self`: a sender's kwarg of that name would be a TypeError,
# held as a bug, instead of one more unexpected field that the contract refuses. It travels under this name
# through Celery's calls, and the tasks give it back its own before reading the message.
_SELF_KWARG = "\x00self"


class PaymentTask(GuardedTask):
    max_retries = _settings.retry_max
    default_retry_delay = 1  # the delay of a retry after the worker process died (task_retry_on_worker_lost)

    def __call__(self, /, *args: object, **kwargs: object) -> object:
        if "self" in kwargs:
            kwargs[_SELF_KWARG] = kwargs.pop("self")
        return super().__call__(*args, **kwargs)


def _sent(kwargs: Mapping[str, object]) -> dict[str, object]:
    """The kwargs as the sender wrote them (see PaymentTask.__call__)."""
    return {("self" if key == _SELF_KWARG else key): value for key, value in kwargs.items()}


def apply_message(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> TaskResult:
    """Apply one message, retrying transient database errors; it is acked only once its fate is in the database."""
    return _with_retries(task, args, kwargs, lambda: _apply(task, args, kwargs))


def _with_retries(task: Task, args: Sequence[object], kwargs: Mapping[str, object], work: Callable[[], R]) -> R:
    try:
        return work()
    except Exception as error:
        if not is_transient(error):
            raise
        retries = task.request.retries
        if retries < task.max_retries:
            countdown = backoff(retries, _settings.retry_backoff_max)
            raise task.retry(exc=error, countdown=countdown) from error
        held = held_records(HeldReason.RETRIES_SPENT, task.name, task.request.id, args, kwargs, repr(error))
        try:
            hold_messages(worker_unit_of_work(), held)
        except Exception as still_down:
            if not is_transient(still_down):
                raise
            # Retries are spent but the database cannot record that yet: acking now would lose the payment
            # without a trace, so keep the message and try again at the slowest pace until it can be recorded.
            raise task.retry(exc=error, countdown=_settings.retry_backoff_max, max_retries=None) from error
        raise


def backoff(retries: int, cap: float) -> float:
    """Seconds before retry number `retries` + 1: doubling from 1 s up to `cap`, the second half of it jittered.

    Jitter keeps workers that retry after an outage from coming back in step; keeping the first half fixed gives
    the retries a floor (half the sum of the caps), so an unlucky run of short draws cannot spend them in seconds.
    """
    ceiling = min(cap, 2.0**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def held_records(
    reason: HeldReason,
    task: str,
    task_id: str | None,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    error: str,
) -> list[HeldMessage]:
    """What to hold of a message: a batch is held payment by payment, so that each keeps its reference and fields."""
    payments = kwargs.get("payments")
    if task != BATCH_TASK or args or not isinstance(payments, list) or not payments:
        return [HeldMessage.of(reason, task, task_id, args, kwargs, error)]
    return [
        HeldMessage.of(reason, task, _item_id(task_id, index), (), batch_item(item), error)
        for index, item in enumerate(payments)
    ]


def _item_id(task_id: str | None, index: int) -> str | None:
    # Held messages are unique by task id: each item of a batch is held under its own, the same on redelivery.
    return None if task_id is None else f"{task_id}#{index}"


def _actor(task: Task) -> str:
    return f"worker {task.request.hostname}"


def _apply(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> TaskResult:
    try:
        request = read(task.name, args, kwargs)
    except InvalidRequest as error:
        held = HeldMessage.of(HeldReason.UNREADABLE, task.name, task.request.id, args, kwargs, str(error))
        held_id = hold_message(worker_unit_of_work(), held)
        return {
            "status": "held",
            "held": held_id,
            "reason": held.reason.value,
            "errors": [str(e) for e in error.errors],
        }
    [outcome] = apply_payments(worker_unit_of_work(), [request], _settings.policy(), actor=_actor(task))
    return outcome_json(outcome)


def apply_group(items: Sequence[tuple[str, Mapping[str, object]]], actor: str) -> list[OutcomeJson]:
    """Apply single-payment messages that the worker gathered, (task name, kwargs) each, in one transaction.

    Raises when any of them cannot join the group (no readable reference) or the transaction fails: the worker then
    runs each message on its own, with its retries and holds (processor/grouping.py).
    """
    requests = [read(name, (), kwargs) for name, kwargs in items]
    outcomes = apply_payments(worker_unit_of_work(), requests, _settings.policy(), actor=actor)
    return [outcome_json(o) for o in outcomes]


def apply_batch_message(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> BatchResult | HeldResult:
    """Apply a payments.batch message in one transaction, isolating any payment that makes it fail for good."""
    try:
        requests, unreadable = read_batch(args, kwargs)
    except InvalidRequest as error:
        held = HeldMessage.of(HeldReason.UNREADABLE, task.name, task.request.id, args, kwargs, str(error))
        return {
            "status": "held",
            "held": hold_message(worker_unit_of_work(), held),
            "reason": held.reason.value,
            "errors": [str(e) for e in error.errors],
        }
    counts: Counter[str] = Counter()
    if unreadable:
        hold_messages(
            worker_unit_of_work(),
            [
                HeldMessage.of(
                    HeldReason.UNREADABLE, task.name, _item_id(task.request.id, u.index), (), u.item, str(u.error)
                )
                for u in unreadable
            ],
        )
        counts["held"] += len(unreadable)
    if requests:
        _with_retries(task, args, kwargs, lambda: _apply_isolating(task, requests, counts))
    return {
        "status": "done",
        "payments": len(requests) + len(unreadable),
        "applied": counts["applied"],
        "rejected": counts["rejected"],
        "duplicates": counts["duplicates"],
        "conflicts": counts["conflicts"],
        "held": counts["held"],
    }


def _apply_isolating(
    task: Task, items: Sequence[tuple[int, PaymentRequest | InvalidPayment]], counts: Counter[str]
) -> None:
    try:
        outcomes = apply_payments(worker_unit_of_work(), [r for _, r in items], _settings.policy(), actor=_actor(task))
    except Exception as error:
        if is_transient(error):
            raise
        if len(items) == 1:
            # The one payment that fails the batch: held as a bug to look at, so that the others can apply. Held
            # under its place in the batch, like every other hold of a batch's item, so each is held once.
            [(index, request)] = items
            fields = {"reference": request.reference, **request.payload()}
            held = HeldMessage.of(
                HeldReason.FAILED, task.name, _item_id(task.request.id, index), (), fields, repr(error)
            )
            hold_message(worker_unit_of_work(), held)
            counts["held"] += 1
            return
        middle = len(items) // 2
        _apply_isolating(task, items[:middle], counts)
        _apply_isolating(task, items[middle:], counts)
        return
    for outcome in outcomes:
        counts[_count_key(outcome)] += 1


def _count_key(outcome: Outcome) -> str:
    if outcome.delivery is Delivery.FIRST:
        return outcome.status.value
    return "duplicates" if outcome.delivery is Delivery.DUPLICATE else "conflicts"


@app.task(name="payments.deposit", base=PaymentTask, bind=True)
def deposit(self: Task, *args: object, **kwargs: object) -> TaskResult:
    """Apply a deposit request: kwargs reference, account, amount, currency, description."""
    return apply_message(self, args, _sent(kwargs))


@app.task(name="payments.withdraw", base=PaymentTask, bind=True)
def withdraw(self: Task, *args: object, **kwargs: object) -> TaskResult:
    """Apply a withdrawal request: kwargs reference, account, amount, currency, description."""
    return apply_message(self, args, _sent(kwargs))


@app.task(name="payments.transfer", base=PaymentTask, bind=True)
def transfer(self: Task, *args: object, **kwargs: object) -> TaskResult:
    """Apply a transfer request: kwargs reference, source, destination, amount, currency, description."""
    return apply_message(self, args, _sent(kwargs))


@app.task(name=BATCH_TASK, base=PaymentTask, bind=True)
def batch(self: Task, *args: object, **kwargs: object) -> BatchResult | HeldResult:
    """Apply a batch of payments in one transaction: kwarg payments, a list of 1 to 1,000 payment file rows."""
    return apply_batch_message(self, args, _sent(kwargs))


@task_failure.connect
def hold_failed_payment(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    **_: object,
) -> None:
    """A payment task that failed for good is held for operators; it has no outcome, so a resend can apply it."""
    if sender is None or sender.name not in PAYMENT_TASKS or (exception is not None and is_transient(exception)):
        return  # a transient error fails a task only once apply_message has held it
    if isinstance(exception, (WorkerLostError, TimeLimitExceeded)):
        # A process that died or ran out of time may or may not have committed: a resend settles it once.
        reason = HeldReason.RETRIES_SPENT
    else:
        reason = HeldReason.FAILED
    held_all = held_records(reason, sender.name, task_id, args or (), kwargs or {}, repr(exception))
    try:
        hold_messages(worker_unit_of_work(), held_all)
    except Exception as error:
        held = held_all[0]
        # The database refused the record: the log line is the only one, so it carries the whole message.
        log_event(
            "payment.held",
            logging.ERROR,
            recorded="log only",
            reason=held.reason,
            task=held.task,
            task_id=task_id,
            reference=held.reference,
            payload=dict(held.message),
            error=held.error,
            database_error=str(error).splitlines()[0],
        )


@task_rejected.connect
def hold_refused_message(message: Message | None = None, exc: BaseException | None = None, **_: object) -> None:
    """A message Celery refused before any task could run (not a task message, or the wrong shape) is held."""
    if message is not None:
        _hold_raw(message, None, "not a task message" if exc is None else repr(exc))


@task_unknown.connect
def hold_unknown_task(
    message: Message | None = None, exc: BaseException | None = None, name: str | None = None, **_: object
) -> None:
    """A message for a task this worker does not know (a typo in the task name, say) is held."""
    if message is not None:
        _hold_raw(message, name, f"no task named {name!r} (expected one of {', '.join(PAYMENT_TASKS)})")


def _hold_raw(message: Message, name: str | None, error: str) -> None:
    # These run in the worker's main process, between messages: whatever happens, it must not stop consuming.
    try:
        headers = message.headers if isinstance(message.headers, dict) else {}
        body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
        task = str(headers.get("task") or name or "(none)")
        fields = {"reference": _reference_in(body), "body": body}
        held = HeldMessage.of(HeldReason.UNREADABLE, task, _text(headers.get("id")), (), fields, error)
        hold_message(worker_unit_of_work(), held)
    except Exception as failure:
        log_event("payment.hold_failed", logging.ERROR, error=error, hold_error=repr(failure))


def _reference_in(body: str) -> object:
    # Best effort, so that an operator can search held messages by reference: a protocol 2 body is
    # [args, kwargs, options].
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    kwargs = decoded[1] if isinstance(decoded, list) and len(decoded) > 1 else None
    return kwargs.get("reference") if isinstance(kwargs, dict) else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@worker_process_init.connect
def forget_inherited_connections(**_: object) -> None:
    """A pool process must not share the main process's database connections: it opens its own."""
    # The main process writes held messages too, so a process forked from it inherits its pool's sockets.
    for engine in worker_engines():
        engine.dispose(close=False)
