"""The payment tasks (ARCHITECTURE.md section 3): validate the message, call one service, return the outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy.exc
from billiard.exceptions import WorkerLostError
from celery import Task
from celery.signals import task_failure, task_rejected, task_unknown, worker_process_init
from kombu.message import Message

from processor.bootstrap import worker_unit_of_work
from processor.celery import GuardedTask, app
from processor.config import get_settings
from processor.db.engine import get_engine
from processor.domain.errors import InvalidRequest
from processor.domain.held import HeldMessage, HeldReason
from processor.logs import log_event
from processor.messages import MESSAGES, read
from processor.services.held import hold_message
from processor.services.payments import apply_payments
from processor.views import outcome_json

# Errors that go away by themselves: the database restarting or unreachable, a deadlock, a serialization failure,
# a lock or statement timeout (psycopg2 raises all of these as OperationalError), or a pool with no free connection.
TRANSIENT = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)
_settings = get_settings()


class PaymentTask(GuardedTask):
    autoretry_for = TRANSIENT
    max_retries = _settings.retry_max
    retry_backoff = 1  # seconds, doubled on each retry
    retry_backoff_max = _settings.retry_backoff_max
    retry_jitter = True  # full jitter: workers retrying after an outage do not come back in step
    default_retry_delay = 1  # the delay of a retry after the worker process died


def apply_message(task: Task, args: Sequence[object], kwargs: Mapping[str, object]) -> dict[str, Any]:
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
    [outcome] = apply_payments(
        worker_unit_of_work(), [request], _settings.policy(), actor=f"worker {task.request.hostname}"
    )
    return outcome_json(outcome)


@app.task(name="payments.deposit", base=PaymentTask, bind=True)
def deposit(self: Task, *args: object, **kwargs: object) -> dict[str, Any]:
    """Apply a deposit request: kwargs reference, account, amount, currency, description."""
    return apply_message(self, args, kwargs)


@app.task(name="payments.withdraw", base=PaymentTask, bind=True)
def withdraw(self: Task, *args: object, **kwargs: object) -> dict[str, Any]:
    """Apply a withdrawal request: kwargs reference, account, amount, currency, description."""
    return apply_message(self, args, kwargs)


@app.task(name="payments.transfer", base=PaymentTask, bind=True)
def transfer(self: Task, *args: object, **kwargs: object) -> dict[str, Any]:
    """Apply a transfer request: kwargs reference, source, destination, amount, currency, description."""
    return apply_message(self, args, kwargs)


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
    if sender is None or sender.name not in MESSAGES:
        return
    transient = isinstance(exception, (*TRANSIENT, WorkerLostError))
    reason = HeldReason.RETRIES_SPENT if transient else HeldReason.FAILED
    held = HeldMessage.of(reason, sender.name, task_id, args or (), kwargs or {}, repr(exception))
    try:
        hold_message(worker_unit_of_work(), held)
    except Exception as error:
        # The database is still away (or refused the record): the log line is the only record, so it carries the
        # whole message.
        log_event(
            "payment.held",
            logging.ERROR,
            recorded="log only",
            reason=held.reason,
            task=held.task,
            task_id=task_id,
            reference=held.reference,
            message=dict(held.message),
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
        _hold_raw(message, name, f"no task named {name!r} (expected one of {', '.join(MESSAGES)})")


def _hold_raw(message: Message, name: str | None, error: str) -> None:
    # These run in the worker's main process, between messages: whatever happens, it must not stop consuming.
    try:
        headers = message.headers if isinstance(message.headers, dict) else {}
        body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
        task = str(headers.get("task") or name or "(none)")
        held = HeldMessage.of(HeldReason.UNREADABLE, task, _text(headers.get("id")), (), {"body": body}, error)
        hold_message(worker_unit_of_work(), held)
    except Exception as failure:
        log_event("payment.hold_failed", logging.ERROR, error=error, hold_error=repr(failure))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@worker_process_init.connect
def forget_inherited_connections(**_: object) -> None:
    """A pool process must not share the main process's database connections: it opens its own."""
    # The main process writes held messages too, so a process forked from it inherits its pool's sockets.
    get_engine(get_settings().database_url).dispose(close=False)
