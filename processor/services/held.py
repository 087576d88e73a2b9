from __future__ import annotations

import logging

from processor.db.uow import UnitOfWork
from processor.domain.held import HeldMessage
from processor.logs import log_event


def hold_message(uow: UnitOfWork, held: HeldMessage) -> int:
    """Record a message for operators, one that no outcome can be recorded for; returns its id."""
    with uow:
        held_id = uow.held.add(held)
        uow.commit()
    log_event(
        "payment.held",
        logging.ERROR,
        id=held_id,
        reason=held.reason,
        task=held.task,
        task_id=held.task_id,
        reference=held.reference,
        error=held.error,
    )
    return held_id


def list_held(uow: UnitOfWork, limit: int = 50) -> list[HeldMessage]:
    """The latest messages held for operators, oldest first."""
    with uow:
        return uow.held.latest(limit)
