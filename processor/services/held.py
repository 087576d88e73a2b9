from __future__ import annotations

import logging
from collections.abc import Sequence

from processor.db.uow import UnitOfWork
from processor.domain.held import HeldMessage
from processor.logs import log_event


def hold_message(uow: UnitOfWork, held: HeldMessage) -> int:
    """Record a message for operators, one that no outcome can be recorded for; returns its id."""
    [held_id] = hold_messages(uow, [held])
    return held_id


def hold_messages(uow: UnitOfWork, held: Sequence[HeldMessage]) -> list[int]:
    """Record several messages for operators in one transaction (the items of a batch); returns their ids."""
    with uow:
        ids = [uow.held.add(h) for h in held]
        uow.commit()
    for held_id, h in zip(ids, held, strict=True):
        log_event(
            "payment.held",
            logging.ERROR,
            id=held_id,
            reason=h.reason,
            task=h.task,
            task_id=h.task_id,
            reference=h.reference,
            error=h.error,
        )
    return ids


def list_held(uow: UnitOfWork, limit: int = 50) -> list[HeldMessage]:
    """The latest messages held for operators, oldest first."""
    with uow:
        return uow.held.latest(limit)
