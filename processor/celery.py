"""The Celery app: `celery -A processor worker` applies payment requests, `celery -A processor flower` watches.

Why these settings (ARCHITECTURE.md section 8):
- Delivery is at least once: a message is acked only after its task has returned (acks late), and a task whose
  worker process died is sent again (retry on worker lost, bounded by the task's max_retries). Exactly-once
  effects come from PostgreSQL, where each reference is recorded with its effects in one transaction. (Except
  that kombu's Redis transport can lose a message whose worker is killed between taking it off the queue and
  recording it as unacked: senders resend references that stay pending; README, "Delivery".)
- Prefetch 1: a worker holds few unacked messages, so a killed worker strands few. Retries waiting for their
  countdown are held unacked too, and prefetch does not count those.
- Redis gives an unacked message to another worker after the visibility timeout (default 300 s). It must be longer
  than the longest retry countdown (60 s) plus the task time limit (60 s), or a retry waiting for its countdown
  would be delivered twice; settings refuse a shorter one. Abandoned messages are looked for every 10 s (or
  sooner, for short timeouts) rather than kombu's default of about 100 s.
- Retries: transient database errors (processor/db/errors.py) are retried with capped exponential backoff and
  full jitter. When the retries are spent the message is held for operators; if even that cannot be written
  (the database is still away), it keeps being retried at the slowest pace, so nothing is acked unrecorded.
- JSON only: a pickled message is refused on arrival (Celery logs and drops it) and never runs. So is a message
  of the wrong shape (see guarded_strategy), which is also held for operators (processor/tasks.py).
- No result backend: the ledger is the record and `submit status` reads it. Task events carry the returned
  outcome to Flower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from celery.worker.strategy import default as default_strategy
from kombu.exceptions import ContentDisallowed, DecodeError

from processor.config import Settings, get_settings
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
        try:
            return handle(*args, **kwargs)
        except (InvalidTaskError, ContentDisallowed, DecodeError):
            raise
        except Exception as error:
            raise InvalidTaskError(f"malformed {task.name} message: {error!r}") from error

    return handler


class GuardedTask(Task):  # type: ignore[misc]
    Strategy = f"{__name__}:guarded_strategy"


def make_app(settings: Settings) -> Celery:
    app = Celery("processor", broker=settings.celery_broker_url, include=["processor.tasks"], task_cls=GuardedTask)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_retry_on_worker_lost=True,
        task_ignore_result=True,
        task_time_limit=settings.task_time_limit,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout // 5)),
            "unacked_restore_throttle": 1,
        },
    )
    return app


app = make_app(get_settings())
