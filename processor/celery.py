"""The Celery app and its settings; why each is set: docs/architecture.md, "Celery settings"."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from celery.worker.strategy import default as default_strategy
from kombu.exceptions import ContentDisallowed, DecodeError
from pydantic import ValidationError

from processor.config import Settings, describe, get_settings
from processor.messages import QUEUE

Handler = Callable[..., Any]


def guarded_strategy(task: Task, app: Celery, consumer: Any, **options: Any) -> Handler:
    """Celery's own strategy, but a message it cannot even turn into a request is refused, not fatal.

    Celery 5.7 builds the request in the worker's main process: a body of the wrong shape (a list of four, an
    object) kills the worker, and a task header without an id makes it reconnect in a loop, each time with the
    message handed back to the queue for the next worker. As an InvalidTaskError it is logged and dropped.
    """
    handle = default_strategy(task, app, consumer, **options)

    def handler(*args: Any, **kwargs: Any) -> Any:
        headers = getattr(args[0], "headers", None) if args else None
        if isinstance(headers, dict):
            # A payment has no deadline a sender may set: an expired one would be discarded as revoked with no
            # record, and a sender's time limit could kill it mid-way. The worker's own limits apply.
            headers.pop("expires", None)
            headers.pop("timelimit", None)
        try:
            return handle(*args, **kwargs)
        except (InvalidTaskError, ContentDisallowed, DecodeError):
            raise
        except Exception as error:
            raise InvalidTaskError(f"malformed {task.name} message: {error!r}") from error

    return handler


class GuardedTask(Task):  # type: ignore[misc]
    # Single-payment messages may be gathered into groups (processor/grouping.py); every other task is guarded.
    Strategy = "processor.grouping:grouping_strategy"


def make_app(settings: Settings) -> Celery:
    app = Celery("processor", broker=settings.celery_broker_url, include=["processor.tasks"], task_cls=GuardedTask)
    app.conf.update(
        # JSON only: a pickled message is refused on arrival, never run, and held (processor/tasks.py).
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        task_default_queue=QUEUE,
        # Acked once the task has returned, so after its transaction committed: delivery is at least once, and
        # the reference recorded with its effects makes a redelivery harmless.
        task_acks_late=True,
        # A task whose pool process died is sent again, within the task's max_retries; if that send fails, the
        # message goes back to the queue instead.
        task_reject_on_worker_lost=True,
        task_retry_on_worker_lost=True,
        # No result backend: the ledger is the record (`submit status` reads it); task events carry the outcome.
        task_ignore_result=True,
        # A task running too long is interrupted first, so that it rolls back and is retried like a lock timeout
        # (processor/tasks.py); one that does not stop is killed at the hard limit and held as retries_spent: it
        # may or may not have committed, and a resend settles it.
        task_soft_time_limit=settings.task_soft_time_limit(),
        task_time_limit=settings.task_time_limit,
        # A group gathers only what the worker has prefetched (README, "Grouped apply in the worker"); what a
        # killed worker held unacked comes back after the visibility timeout. Retries waiting for their countdown
        # are not counted.
        worker_prefetch_multiplier=settings.worker_prefetch_multiplier(),
        worker_concurrency=settings.worker_concurrency,
        # A message no task can take is held before Celery drops it (processor/consumer.py).
        worker_consumer="processor.consumer:PaymentConsumer",
        # Flower is built from task events, the returned outcome included.
        worker_send_task_events=True,
        task_send_sent_event=True,
        # After a lost broker connection running tasks cannot be acked and come back anyway: stop doing them twice.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # A worker started before Redis waits for it instead of exiting.
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Redis redelivers an unacked message after this; settings keep it above the longest retry countdown
            # plus the task time limit, or a retry still waiting for its countdown would be delivered twice.
            "visibility_timeout": settings.visibility_timeout,
            # Abandoned messages are looked for every 10 s (sooner for short timeouts), not kombu's ~100 s.
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 5)),
            "unacked_restore_throttle": 1,
        },
    )
    app.steps["consumer"].add("processor.grouping:Grouping")
    return app


def _settings_or_exit() -> Settings:
    # `celery -A processor worker` imports this module: a bad setting must be one line naming the variable, not a
    # traceback that quotes its value (a URL's password with it).
    try:
        return get_settings()
    except ValidationError as error:
        sys.exit(f"error: configuration: {describe(error)}")


app = make_app(_settings_or_exit())

# Connects the logging signals, so that a worker logs in PROCESSOR_LOG_FORMAT.
import processor.worker_logging  # noqa: E402, F401
