"""A worker's logs in PROCESSOR_LOG_FORMAT: Celery sets up its loggers, then these signals give them our format.

Celery's own lines (worker ready, task received, succeeded, retried) and the `processor` logger's state changes go
through the root logger's handler, kept where Celery put it (stderr, or --logfile); in json, each is one JSON object.
"""

from __future__ import annotations

import logging
from typing import Any

from celery._state import get_current_task
from celery.signals import after_setup_logger, after_setup_task_logger, celeryd_after_setup
from celery.utils.log import get_multiprocessing_logger

from processor.config import get_settings
from processor.logs import JsonLineFormatter, log_event
from processor.logs import logger as processor_logger


class TaskJsonLineFormatter(JsonLineFormatter):
    """The task logger's lines, with the running task's name and id as Celery's TaskFormatter gives them."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(task_name)s %(task_id)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        task = get_current_task()
        running = task is not None and task.request is not None
        record.__dict__.setdefault("task_name", task.name if running else None)
        record.__dict__.setdefault("task_id", task.request.id if running else None)
        return super().format(record)


def _reformat(logger: logging.Logger | None, formatter: logging.Formatter) -> None:
    for handler in logger.handlers if logger is not None else ():
        handler.setFormatter(formatter)


@after_setup_logger.connect
def _worker_logs(logger: logging.Logger, **_: Any) -> None:
    settings = get_settings()
    # Through the root logger like Celery's own lines: same destination, same level unless PROCESSOR_LOG_LEVEL.
    processor_logger.handlers[:] = []
    processor_logger.propagate = True
    processor_logger.setLevel(settings.log_level or logging.NOTSET)
    if settings.log_format == "json":
        _reformat(logger, JsonLineFormatter())
        _reformat(get_multiprocessing_logger(), JsonLineFormatter())


@after_setup_task_logger.connect
def _task_logs(logger: logging.Logger, **_: Any) -> None:
    if get_settings().log_format == "json":
        _reformat(logger, TaskJsonLineFormatter())


@celeryd_after_setup.connect
def _no_banner_in_json(sender: str, instance: Any, **_: Any) -> None:
    # The startup banner is printed, not logged: in json it would be the only lines a log pipeline cannot parse.
    # Its essentials become one line instead.
    if get_settings().log_format == "json":
        instance.quiet = True
        log_event(
            "worker.starting",
            hostname=sender,
            concurrency=instance.concurrency,
            queues=sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues),
        )
