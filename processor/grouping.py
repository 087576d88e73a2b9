"""Grouped apply: the worker's main process gathers single-payment messages and applies each group in one pool job.

grouping_strategy hands each plain message to the consumer's Grouper (owned by the Grouping bootstep); a Group is
one pool job calling processor.tasks.apply_group, whose messages are acked when its result is back, or handed one by
one to the task's normal strategy handler when it fails. The knobs and their costs: README.md, "Grouped apply in the
worker".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from billiard.einfo import ExceptionWithTraceback
from celery import Celery, Task, bootsteps
from celery.exceptions import InvalidTaskError
from celery.utils.saferepr import saferepr
from kombu.exceptions import ContentDisallowed, DecodeError

from processor.celery import Handler, guarded_strategy
from processor.config import get_settings
from processor.logs import log_event
from processor.messages import MESSAGES
from processor.tasks import apply_group

# Celery's own logger for acks, so that a failed ack is logged as it is for any task.
_ack_logger = logging.getLogger("celery.worker.request")
# Parts of a protocol 2 body that only Celery's own request honours.
_WORKFLOW = ("callbacks", "errbacks", "chain", "chord")


class GroupRun(NamedTuple):
    """What a group's pool job sends back: Flower's repr of each outcome, or why the group failed."""

    outcomes: list[str] | None
    error: str | None
    runtime: float


def run_group(items: Sequence[tuple[str, Mapping[str, object]]], actor: str, repr_size: int) -> GroupRun:
    """Apply a group in a pool process, in one transaction."""
    started = time.monotonic()
    try:
        outcomes = apply_group(items, actor)
    except Exception as error:
        # Returned, not raised: any error sends each message the normal way, and a returned string always pickles.
        return GroupRun(None, repr(error), time.monotonic() - started)
    return GroupRun([saferepr(o, repr_size) for o in outcomes], None, time.monotonic() - started)


def plain_kwargs(message: Any, revoked: Any) -> dict[str, object] | None:
    """The kwargs of a message that may join a group; None sends it the normal way."""
    headers = message.headers
    if not isinstance(headers, dict):
        return None
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not task_id or task_id in revoked:
        return None
    # A retry, a redelivery or a message with a schedule keeps Celery's own handling: its retry count, its hold on
    # worker loss, its eta, its expiry, its own time limits.
    if headers.get("retries") or headers.get("eta") or headers.get("expires") or headers.get("redelivered"):
        return None
    if (getattr(message, "delivery_info", None) or {}).get("redelivered"):
        return None
    timelimit = headers.get("timelimit")
    if timelimit is not None and not (isinstance(timelimit, list | tuple) and not any(timelimit)):
        return None
    try:
        # Decoded with the worker's accept list (JSON only); Celery's request reuses the decoded body.
        body = message.decode()
    except Exception:
        return None
    if not isinstance(body, list | tuple) or len(body) != 3:
        return None
    args, kwargs, options = body
    if not isinstance(args, list) or args or not isinstance(kwargs, dict) or not isinstance(options, dict):
        return None
    if any(options.get(key) for key in _WORKFLOW):
        return None
    return kwargs


@dataclass(frozen=True, slots=True)
class Pending:
    """A message in a group, with what the normal path needs if the group fails."""

    task: Any
    task_id: str
    message: Any
    kwargs: dict[str, object]
    ack: Callable[..., Any]
    reject: Callable[..., Any]
    callbacks: Any
    alone: Handler


class Grouper:
    """Gathers a consumer's plain single-payment messages into groups, in the event loop's thread only."""

    def __init__(self, consumer: Any, size: int, wait: float, soft_time_limit: float, time_limit: float) -> None:
        self._consumer = consumer
        self._hub = consumer.hub
        self._size = size
        self._wait = wait
        self._soft_time_limit = soft_time_limit
        self._time_limit = time_limit
        self._actor = f"worker {consumer.hostname}"
        self._buffer: list[Pending] = []
        self._timer: Any = None
        self._open = False
        # Bumped when the consumer stops: a group of an earlier connection is left to the broker's redelivery.
        self.generation = 0

    def open(self) -> None:
        """Take messages: the consumer has (re)connected."""
        self._open = True

    def close(self) -> None:
        """Drop the messages still gathering, unacked: the broker gives them back when the channel closes."""
        self._open = False
        self.generation += 1
        self._cancel_timer()
        dropped, self._buffer = self._buffer, []
        if dropped:
            log_event("payment.group_left_unacked", logging.WARNING, size=len(dropped))

    def offer(self, task: Task, message: Any, ack: Any, reject: Any, callbacks: Any, alone: Handler) -> bool:
        """Add the message to the open group; False when it must go the normal way."""
        if not self._open:
            return False
        kwargs = plain_kwargs(message, self._consumer.controller.state.revoked)
        if kwargs is None:
            return False
        task_id = message.headers["id"]
        self._buffer.append(Pending(task, task_id, message, kwargs, ack, reject, callbacks, alone))
        if len(self._buffer) >= self._size:
            self.flush()
        elif self._timer is None:
            # The hub's timer fires in the event loop's thread, the one that calls offer: no lock is needed.
            self._timer = self._hub.call_later(self._wait, self._on_wait)
        return True

    def _on_wait(self) -> None:
        self._timer = None
        if self.semaphore.value <= 0:
            # Every pool process is busy, so a group sent now would only wait for one: it may as well keep growing.
            self._timer = self._hub.call_later(self._wait, self._on_wait)
            return
        self.flush()

    def flush(self) -> None:
        """Send the open group to the pool; a group of one goes the normal way, which costs the same."""
        self._cancel_timer()
        items, self._buffer = self._buffer, []
        if len(items) == 1:
            self.alone(items[0])
        elif items:
            Group(self, items).start()

    def submit(self, group: Group) -> Any:
        """Start a group's pool job under the task time limits: a slow group rolls back or is killed, and falls back."""
        return self._consumer.pool.apply_async(
            run_group,
            args=([(p.task.name, p.kwargs) for p in group.items], self._actor, group.items[0].task.resultrepr_maxsize),
            accept_callback=group.on_accepted,
            callback=group.on_result,
            error_callback=group.on_error,
            timeout_callback=group.on_timeout,
            soft_timeout=self._soft_time_limit,
            timeout=self._time_limit,
            correlation_id=group.items[0].task_id,
        )

    @property
    def semaphore(self) -> Any:
        """The worker's gate of one job per pool process: normal tasks and groups take turns through it."""
        return self._consumer.controller.semaphore

    def send_event(self, item: Pending, type: str, **fields: object) -> None:
        eventer = self._consumer.event_dispatcher
        if eventer is not None and eventer.enabled and item.task.send_events:
            eventer.send(type, uuid=item.task_id, **fields)

    def ack(self, item: Pending) -> None:
        item.ack(_ack_logger, self._consumer.connection_errors)

    def alone(self, item: Pending) -> None:
        """Hand a message to the task's normal strategy handler, as if it had just arrived."""
        consumer = self._consumer
        try:
            item.alone(item.message, None, item.ack, item.reject, item.callbacks)
        except (InvalidTaskError, ContentDisallowed) as error:
            consumer.on_invalid_task(None, item.message, error)
        except DecodeError as error:
            consumer.on_decode_error(item.message, error)
        except Exception as error:
            # Never stop handing out the rest of a group; this one stays unacked and comes back to a worker.
            log_event("payment.group_dispatch_failed", logging.ERROR, task_id=item.task_id, error=repr(error))

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


class Group:
    """One group's pool job: every message acked once its transaction committed, or each sent the normal way."""

    def __init__(self, grouper: Grouper, items: list[Pending]) -> None:
        self.grouper = grouper
        self.items = items
        self.generation = grouper.generation
        self._done = False

    def start(self) -> None:
        for item in self.items:
            self.grouper.send_event(
                item,
                "task-received",
                name=item.task.name,
                args=item.message.headers.get("argsrepr") or "()",
                kwargs=item.message.headers.get("kwargsrepr") or saferepr(item.kwargs),
                root_id=item.message.headers.get("root_id"),
                parent_id=item.message.headers.get("parent_id"),
                retries=0,
                eta=None,
                expires=None,
            )
        # Runs now if a pool process is free, else once a job ends; a consumer that stops clears the waiters.
        self.grouper.semaphore.acquire(self._submit)

    def _submit(self) -> None:
        if self.generation != self.grouper.generation:
            self.grouper.semaphore.release()
            return
        try:
            job = self.grouper.submit(self)
        except Exception as error:
            self.grouper.semaphore.release()
            self._fall_back(repr(error))
            return
        if job is None:
            # The pool is closing: the messages stay unacked and the broker gives them back.
            self.grouper.semaphore.release()
            log_event("payment.group_left_unacked", logging.WARNING, size=len(self.items))

    def on_accepted(self, pid: int, time_accepted: float) -> None:
        for item in self.items:
            self.grouper.send_event(item, "task-started")

    def on_result(self, run: GroupRun) -> None:
        if self._done:
            return
        self._done = True
        if run.outcomes is None or len(run.outcomes) != len(self.items):
            self._fall_back(run.error or f"{len(run.outcomes or ())} outcomes for {len(self.items)} messages")
            return
        # The result reached this process, so apply_group returned: its transaction has committed. Logged before
        # the acks, so that whoever sees the queue idle can also find the line.
        log_event("payment.group_applied", size=len(self.items), seconds=f"{run.runtime:.3f}")
        for item, outcome in zip(self.items, run.outcomes, strict=True):
            self.grouper.ack(item)
            self.grouper.send_event(item, "task-succeeded", result=outcome, runtime=run.runtime)

    def on_error(self, failure: Any) -> None:
        # A WorkerLostError (the process died), a TimeLimitExceeded, or an error the pool itself met.
        if self._done:
            return
        self._done = True
        error = getattr(failure, "exception", failure)
        # The pool wraps an exception to carry its traceback across processes, as Celery's own request unwraps it.
        self._fall_back(repr(error.exc if isinstance(error, ExceptionWithTraceback) else error))

    def on_timeout(self, soft: bool, timeout: float) -> None:
        log_event("payment.group_timed_out", logging.ERROR, size=len(self.items), seconds=timeout)

    def _fall_back(self, error: str) -> None:
        log_event("payment.group_fallback", logging.WARNING, size=len(self.items), error=error)
        if self.generation != self.grouper.generation:
            return  # the channel these came on is gone: the broker has given them back already
        for item in self.items:
            self.grouper.alone(item)


class Grouping(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep that owns the consumer's grouper: it takes messages while the consumer consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        c.payment_grouper = make_grouper(c)

    def start(self, c: Any) -> None:
        if c.payment_grouper is not None:
            c.payment_grouper.open()

    def stop(self, c: Any) -> None:
        if c.payment_grouper is not None:
            c.payment_grouper.close()

    def shutdown(self, c: Any) -> None:
        self.stop(c)


def make_grouper(consumer: Any) -> Grouper | None:
    """The consumer's grouper, or None when grouping is off or this pool cannot run it."""
    settings = get_settings()
    if settings.group_size <= 1:
        return None
    semaphore = getattr(consumer.controller, "semaphore", None)
    if consumer.hub is None or semaphore is None or not getattr(consumer.pool, "uses_semaphore", False):
        # Other pools run their callbacks on other threads than the consumer's, or never free the semaphore's slot.
        log_event("payment.grouping_off", logging.WARNING, reason="needs the prefork pool and its event loop")
        return None
    conf = consumer.app.conf
    return Grouper(
        consumer,
        settings.group_size,
        settings.group_wait_ms / 1000,
        conf.task_soft_time_limit or settings.task_soft_time_limit(),
        conf.task_time_limit or settings.task_time_limit,
    )


def grouping_strategy(task: Task, app: Celery, consumer: Any, **options: Any) -> Handler:
    """The guarded strategy, but a plain single-payment message joins the consumer's group instead of running alone."""
    alone = guarded_strategy(task, app, consumer, **options)
    grouper: Grouper | None = getattr(consumer, "payment_grouper", None)
    if grouper is None or task.name not in MESSAGES:
        return alone

    def handler(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any) -> Any:
        # A protocol 1 body comes decoded; per-message hooks (the autoscaler) want a request: both go alone.
        if body is None and not callbacks and grouper.offer(task, message, ack, reject, callbacks, alone):
            return None
        return alone(message, body, ack, reject, callbacks)

    return handler
