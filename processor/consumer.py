"""The worker's consumer: a message that no task can take is held before Celery drops it, or else kept."""

from __future__ import annotations

import json
import time
from typing import Any

from celery.worker.consumer import Consumer
from kombu.message import Message

from processor.bootstrap import worker_unit_of_work
from processor.domain.held import HeldMessage, HeldReason
from processor.services.held import hold_message
from processor.tasks import KEEP_PAUSE, PAYMENT_TASKS, log_unrecorded, requeue_or_leave


class PaymentConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, but each message it would drop unrun is held first; one that cannot be held goes back."""

    # Celery acks (rejects) these messages and only then sends the signals that could hold them: a hold that then
    # failed left no record at all. Held first, they are dropped only once the hold is in the database.

    def on_unknown_message(self, body: Any, message: Message) -> None:
        if self._held(message, None, "not a task message"):
            super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Message, exc: BaseException) -> None:
        name = _headers(message).get("task")
        error = f"no task named {str(name)!r} (expected one of {', '.join(PAYMENT_TASKS)})"
        if self._held(message, None if name is None else str(name), error):
            super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Message, exc: BaseException) -> None:
        if self._held(message, None, repr(exc)):
            super().on_invalid_task(body, message, exc)

    def _held(self, message: Message, name: str | None, error: str) -> bool:
        held = raw_held(message, name, error)
        try:
            hold_message(worker_unit_of_work(), held)
        except Exception as failure:
            log_unrecorded([held], failure)
            # This is the main process: the pause stops all consuming, which is all it could do without a database.
            time.sleep(KEEP_PAUSE)
            requeue_or_leave(message, self.connection_errors, _headers(message).get("id"))
            return False
        return True


def raw_held(message: Message, name: str | None, error: str) -> HeldMessage:
    """What to hold of a message as it arrived: its body as text, and its reference if one can be found."""
    headers = _headers(message)
    body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
    task = str(headers.get("task") or name or "(none)")
    task_id = headers.get("id")
    fields = {"reference": _reference_in(body), "body": body}
    return HeldMessage.of(HeldReason.UNREADABLE, task, None if task_id is None else str(task_id), (), fields, error)


def _headers(message: Message) -> dict[str, Any]:
    return message.headers if isinstance(message.headers, dict) else {}


def _reference_in(body: str) -> object:
    # Best effort, so that an operator can search held messages by reference: a protocol 2 body is
    # [args, kwargs, options].
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    kwargs = decoded[1] if isinstance(decoded, list) and len(decoded) > 1 else None
    return kwargs.get("reference") if isinstance(kwargs, dict) else None
