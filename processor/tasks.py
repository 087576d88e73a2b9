"""The payment tasks (docs/architecture.md): validate the message, call one service, return the outcome."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn, TypedDict, TypeVar

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery import Task
from celery.exceptions import Reject, TaskPredicate
from celery.signals import worker_init, worker_process_init
from celery.worker.request import Request
from celery.worker.state import revoked as revoked_tasks
from kombu.message import Message

from processor.bootstrap import worker_engines, worker_unit_of_work
from processor.celery import GuardedTask, app
from processor.config import get_settings
from processor.db.schema import privilege_problem, schema_problem
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
# How long a message whose record cannot be written waits in its pool process before it goes back to the queue:
# it would only fail again at once, and this keeps a worker that cannot write from spinning on its queue.
KEEP_PAUSE = 5.0


class PaymentDelivery(Request):  # type: ignore[misc]
    """Celery's request for a payment message: never acked without its record, and not revocable."""

    def revoked(self) -> bool:
        # A revoked or expired payment would be acked and dropped with no record: it is applied instead, and a
        # sender that wants it undone sends a reversal.
        if self.id in revoked_tasks:
            log_event("payment.revoke_ignored", logging.WARNING, task=self.task.name, task_id=self.id)
        return False

    def terminate(self, pool: object, signal: object = None) -> None:
        # `revoke --terminate` would kill the payment mid-transaction and ack it: the outcome would be unknown.
        log_event("payment.terminate_ignored", logging.WARNING, task=self.task.name, task_id=self.id)

    def on_failure(self, exc_info: object, send_failed_event: bool = True, return_ok: bool = False) -> object:
        error = getattr(exc_info, "exception", None)
        if isinstance(error, ExceptionWithTraceback):
            error = error.exc
        if self._acked_without_retry(error):
            # Celery acks these before it reports them: the hold must be written first.
            held = held_records(HeldReason.RETRIES_SPENT, self.task.name, self.id, self.args, self.kwargs, repr(error))
            try:
                hold_messages(worker_unit_of_work(), held)
            except Exception as failure:
                log_unrecorded(held, failure)
                self.reject(requeue=True)
                return None
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def reject(self, requeue: bool = False) -> None:
        if not requeue or self.acknowledged:  # type: ignore[has-type]
            super().reject(requeue=requeue)
            return
        # At once, not on the event loop as Celery would: a requeue that Redis refuses must not stop the worker.
        requeue_or_leave(self._message, self._connection_errors, self.id)
        self.acknowledged = True
        self.send_event("task-rejected", requeue=True)

    def _acked_without_retry(self, error: object) -> bool:
        # Killed at the hard time limit; or the process died and its retries (task_retry_on_worker_lost) are spent.
        if isinstance(error, TimeLimitExceeded):
            return True
        return isinstance(error, WorkerLostError) and self.request_dict.get("retries", 0) >= self.task.max_retries


def requeue_or_leave(message: Message, connection_errors: tuple[type[BaseException], ...], task_id: object) -> None:
    """Put a message back in its queue; if Redis refuses, it stays unacked, and Redis gives it back after the
    visibility timeout."""
    try:
        message.reject(requeue=True)  # type: ignore[no-untyped-call]
    except redis.exceptions.ResponseError as error:
        # Redis refuses writes (full, under noeviction): the requeue failed as a whole, so the message is still in
        # the unacked set. Raised, this error would stop the worker.
        log_event("payment.requeue_failed", logging.ERROR, task_id=task_id, kept="unacked", error=_first_line(error))
    except connection_errors as error:
        # The connection is gone, and with it the channel's unacked messages: Redis gives them back.
        log_event("payment.requeue_failed", logging.ERROR, task_id=task_id, kept="unacked", error=_first_line(error))


class PaymentTask(GuardedTask):
    max_retries = _settings.retry_max
    default_retry_delay = 1  # the delay of a retry after the worker process died (task_retry_on_worker_lost)
    Request = PaymentDelivery

    def __call__(self, /, *args: object, **kwargs: object) -> object:
        if "self" in kwargs:
            kwargs[_SELF_KWARG] = kwargs.pop("self")
        return super().__call__(*args, **kwargs)


def _sent(kwargs: Mapping[str, object]) -> dict[str, object]:
    """The kwargs as the sender wrote them (see PaymentTask.__call__)."""
    return {("self" if key == _SELF_KWARG else key): value for key, value in kwargs.items()}


def apply_message(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> TaskResult:
    """Apply one message, retrying transient database errors; it is acked only once its fate is in the database."""
    return _held_if_failed(
        task, args, kwargs, lambda: _with_retries(task, args, kwargs, lambda: _apply(task, args, kwargs))
    )


def retryable(error: BaseException) -> bool:
    """Whether a later attempt may succeed: a transient database error, or a run cut short by the soft time limit."""
    return isinstance(error, SoftTimeLimitExceeded) or is_transient(error)


def _held_if_failed(task: Task, args: Sequence[object], kwargs: Mapping[str, object], work: Callable[[], R]) -> R:
    # A payment that fails for good is held for operators before its message is acked; it has no outcome, so a
    # resend can apply it once the cause is fixed.
    try:
        return work()
    except TaskPredicate:
        raise  # Celery's own retry, reject and ignore
    except Exception as error:
        if retryable(error):
            raise  # its retries are spent, and _with_retries has held it
        _hold_or_keep(held_records(HeldReason.FAILED, task.name, task.request.id, args, kwargs, repr(error)))
        raise


def _with_retries(task: Task, args: Sequence[object], kwargs: Mapping[str, object], work: Callable[[], R]) -> R:
    try:
        return work()
    except Exception as error:
        if not retryable(error):
            raise
        retries = task.request.retries
        if retries < task.max_retries:
            raise _retry(task, error, backoff(retries, _settings.retry_backoff_max)) from error
        held = held_records(HeldReason.RETRIES_SPENT, task.name, task.request.id, args, kwargs, repr(error))
        try:
            hold_messages(worker_unit_of_work(), held)
        except Exception as still_down:
            if not is_transient(still_down):
                _keep(held, still_down)
            # Retries are spent but the database cannot record that yet: acking now would lose the payment
            # without a trace, so keep the message and try again at the slowest pace until it can be recorded.
            raise _retry(task, error, _settings.retry_backoff_max, max_retries=None) from error
        raise


def _retry(task: Task, error: Exception, countdown: float, **options: object) -> Exception:
    """Celery's retry, but a retry the broker refuses puts the message back instead of dropping it."""
    try:
        return task.retry(exc=error, countdown=countdown, **options)  # type: ignore[no-any-return]
    except Reject as refused:
        # Celery sends the retry as a new message and, if that fails, rejects this one without requeueing it:
        # with Redis full or away, the payment would vanish. Requeued, it is tried again; if even that cannot be
        # written, it stays unacked and Redis gives it back after the visibility timeout.
        log_event("payment.retry_not_sent", logging.ERROR, task_id=task.request.id, error=repr(refused.reason))
        time.sleep(min(countdown, KEEP_PAUSE))
        raise Reject(refused.reason, requeue=True) from error


def _hold_or_keep(held: list[HeldMessage]) -> None:
    """Write the holds; if the database refuses them, the message goes back to the queue rather than being acked."""
    try:
        hold_messages(worker_unit_of_work(), held)
    except Exception as failure:
        _keep(held, failure)


def _keep(held: list[HeldMessage], failure: Exception) -> NoReturn:
    log_unrecorded(held, failure)
    time.sleep(KEEP_PAUSE)
    raise Reject(failure, requeue=True) from failure


def log_unrecorded(held: Sequence[HeldMessage], failure: Exception) -> None:
    """Log a hold the database refused, with what it was for: its message goes back to the queue."""
    first = held[0]
    log_event(
        "payment.hold_failed",
        logging.ERROR,
        kept="back to the queue",
        reason=first.reason,
        task=first.task,
        task_id=first.task_id,
        reference=first.reference,
        payments=len(held),
        error=first.error,
        database_error=_first_line(failure),
    )


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
    # The whole message is retried: what an earlier attempt applied or held is recorded, and comes back as such.
    return _held_if_failed(
        task, args, kwargs, lambda: _with_retries(task, args, kwargs, lambda: _apply_batch(task, args, kwargs))
    )


def _apply_batch(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> BatchResult | HeldResult:
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
        _apply_isolating(task, requests, counts)
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
        if retryable(error):
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


@worker_process_init.connect
def forget_inherited_connections(**_: object) -> None:
    """A pool process must not share the main process's database connections: it opens its own."""
    # The main process writes held messages too, so a process forked from it inherits its pool's sockets.
    for engine in worker_engines():
        engine.dispose(close=False)


@worker_init.connect
def refuse_stale_schema(**_: object) -> None:
    """A worker does not start on a database whose schema is not its code's, or as a role that cannot record."""
    # Every task and every hold would fail (a missing table, say); it would only take messages to put them back.
    try:
        problem = schema_problem(_settings.database_url) or privilege_problem(_settings.database_url)
    except Exception as error:
        if not is_transient(error):
            raise SystemExit(f"error: cannot read the database schema's revision: {_first_line(error)}") from None
        # Not reachable yet: tasks retry until it is, and one that cannot be recorded goes back to the queue.
        log_event("worker.schema_unchecked", logging.WARNING, error=_first_line(error))
        return
    if problem is not None:
        raise SystemExit(f"error: {problem}")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [repr(error)])[0]
