"""The Celery app: `celery -A processor worker` applies payment requests, `celery -A processor flower` watches.

Why these settings (ARCHITECTURE.md section 8):
- Delivery is at least once: a message is acked only after its task has returned (acks late), and a task whose
  worker process died is sent again (retry on worker lost, bounded by the task's max_retries). Exactly-once
  effects come from PostgreSQL, where each reference is recorded with its effects in one transaction.
- Prefetch 1: a worker holds few unacked messages, so a killed worker strands few, and none waits long enough in a
  worker's buffer to pass the visibility timeout.
- Redis gives an unacked message to another worker after the visibility timeout (default 300 s). It must be longer
  than the longest task (statement timeout, 30 s) plus the longest retry countdown (60 s), or a retry waiting for
  its countdown would be delivered twice; settings refuse a shorter one. Abandoned messages are looked for every
  10 s (or sooner, for short timeouts) rather than kombu's default of about 100 s.
- JSON only: a pickled message is refused on arrival (Celery logs and drops it) and never runs.
- No result backend: the ledger is the record and `submit status` reads it. Task events carry the returned
  outcome to Flower.
"""

from __future__ import annotations

from celery import Celery

from processor.config import Settings, get_settings
from processor.messages import QUEUE


def make_app(settings: Settings) -> Celery:
    app = Celery("processor", broker=settings.celery_broker_url, include=["processor.tasks"])
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
        task_time_limit=max(60, int(settings.statement_timeout * 2)),
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
