from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from processor.db.uow import UnitOfWork
from processor.domain.errors import HeldActionRefused, HeldNotFound, InvalidRequest, InvalidValue
from processor.domain.held import HeldMessage
from processor.domain.outcomes import Delivery, Outcome, OutcomeStatus
from processor.domain.pages import CursorOf, Page, check_limit, paged, read_cursor
from processor.logs import log_event
from processor.messages import BATCH_TASK, MESSAGES, PaymentMessage, build, from_fields

_HELD = CursorOf[HeldMessage]("held", "id")


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


def held_page(
    uow: UnitOfWork, include_resolved: bool = False, limit: int = 50, after: str | None = None
) -> Page[HeldMessage]:
    """Held messages newest first, each with the outcome its reference has now; the open ones unless told."""
    check_limit(limit)
    after_id = None if after is None else cast(int, read_cursor(_HELD.listing, after, int)[0])
    with uow:
        rows = uow.held.page(limit + 1, include_resolved, after_id)
    return paged(rows, limit, _HELD)


@dataclass(frozen=True)
class Resend:
    """What a resend did: `sent` is False when the reference had an outcome already, so there was nothing to do."""

    held: HeldMessage
    reference: str
    sent: bool
    outcome: Outcome


Send = Callable[[PaymentMessage], None]


def resend_held(uow: UnitOfWork, held_id: int, actor: str, send: Send) -> Resend:
    """Send a held message again under its reference (harmless: a reference applies once); audited."""
    with uow:
        held = uow.held.get_for_update(held_id)
        if held is None:
            raise HeldNotFound(held_id)
        if held.resolved_at is not None:
            raise HeldActionRefused(f"held message {held_id} was resolved by {held.resolved_by}; nothing was sent")
        message = _resendable(held)
        recorded = uow.transactions.get_by_references([message.reference]).get(message.reference)
        if recorded is not None:
            # Sending it again would change nothing (or be recorded as a conflict): say so instead.
            uow.audit.add(actor, "held.resend_skipped", "held_message", str(held_id), reference=message.reference)
            uow.commit()
            return Resend(held, message.reference, False, recorded.outcome(Delivery.DUPLICATE))
        uow.held.mark_resent(held_id)
        uow.audit.add(actor, "held.resent", "held_message", str(held_id), reference=message.reference, task=held.task)
        # Sent before the commit: a send that fails rolls the note back. A commit that fails after the send leaves
        # a message on its way with no note of it, which the reference makes harmless.
        send(message)
        uow.commit()
    log_event("held.resent", id=held_id, reference=message.reference, actor=actor)
    return Resend(held, message.reference, True, Outcome(message.reference, OutcomeStatus.PENDING))


def _resendable(held: HeldMessage) -> PaymentMessage:
    """The held message as a valid payment message, or why it cannot be sent again."""
    if held.reference is None:
        raise HeldActionRefused(
            f"held message {held.id} has no readable reference, so no outcome could ever be recorded for it;"
            " resolve it (and ask its sender for a valid message)"
        )
    try:
        if held.task in MESSAGES:
            return build(MESSAGES[held.task], **{str(k): v for k, v in held.message.items()})
        if held.task == BATCH_TASK:
            # An item of a batch is a payment like any other: sent alone, it has the same reference and effect.
            return from_fields(held.message)
    except InvalidRequest as error:
        raise HeldActionRefused(f"held message {held.id} is not a valid payment ({error}); resolve it") from None
    raise HeldActionRefused(f"held message {held.id} is for {held.task!r}, which is not a payment task; resolve it")


def resolve_held(uow: UnitOfWork, held_id: int, reason: str, actor: str) -> HeldMessage:
    """Close a held message with a note of what was done about it; audited."""
    note = reason.strip()
    if not note:
        raise InvalidValue("reason", "say how it was resolved; it goes into the audit log")
    with uow:
        held = uow.held.get_for_update(held_id)
        if held is None:
            raise HeldNotFound(held_id)
        if held.resolved_at is not None:
            raise HeldActionRefused(
                f"held message {held_id} was resolved already, by {held.resolved_by}: {held.resolution}"
            )
        at = uow.held.resolve(held_id, actor, note)
        uow.audit.add(actor, "held.resolved", "held_message", str(held_id), reference=held.reference, reason=note)
        uow.commit()
    log_event("held.resolved", id=held_id, reference=held.reference, actor=actor)
    return replace(held, resolved_at=at, resolved_by=actor, resolution=note)
