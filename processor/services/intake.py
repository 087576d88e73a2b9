"""Payments arriving over HTTP: what is already recorded under each reference decides whether they go to the queue.

The web process never applies a payment: it reads what a worker recorded and sends the rest to the workers' queue,
where the rules of ARCHITECTURE section 4 decide, as for every other sender.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from processor.db.uow import UnitOfWork
from processor.domain.money import format_amount
from processor.domain.outcomes import Delivery, Outcome, OutcomeStatus
from processor.domain.requests import PaymentRequest
from processor.logs import log_event
from processor.messages import PaymentMessage

Send = Callable[[Sequence[PaymentMessage]], object]


@dataclass(frozen=True)
class Intake:
    """One payment as the API answers for it: its outcome so far, and whether it was sent to the queue."""

    outcome: Outcome
    sent: bool

    @property
    def conflict(self) -> bool:
        return self.outcome.delivery is Delivery.CONFLICT


def pending(request: PaymentRequest) -> Outcome:
    """The outcome of a payment sent but not yet recorded: pending, with the fields it was sent with."""
    return Outcome(
        reference=request.reference,
        status=OutcomeStatus.PENDING,
        type=request.type.value,
        amount=format_amount(request.amount),
        currency=request.currency,
        source=request.source,
        destination=request.destination,
    )


def _audited(message: PaymentMessage) -> dict[str, object]:
    request = message.request()
    return {
        "type": request.type.value,
        "amount": format_amount(request.amount),
        "currency": request.currency,
        "source": request.source,
        "destination": request.destination,
    }


def enqueue_payments(uow: UnitOfWork, messages: Sequence[PaymentMessage], send: Send, sender: str) -> list[Intake]:
    """Send the payments that have no outcome yet, in one call of `send`; report the others' recorded outcomes.

    The same payload under a recorded reference is a duplicate: nothing is sent, its outcome is returned. Another
    payload under it is a conflict: it is sent all the same, so that the worker records the attempt beside the
    outcome (which stands) where operators see it, and the caller is told the outcome it conflicts with.
    """
    requests = [m.request() for m in messages]
    with uow:
        recorded = uow.transactions.get_by_references({r.reference for r in requests})
    intakes: list[Intake] = []
    outgoing: list[PaymentMessage] = []
    for message, request in zip(messages, requests, strict=True):
        previous = recorded.get(request.reference)
        if previous is None:
            intakes.append(Intake(pending(request), sent=True))
            outgoing.append(message)
        elif previous.fingerprint == request.fingerprint():
            intakes.append(Intake(previous.outcome(Delivery.DUPLICATE), sent=False))
        else:
            intakes.append(Intake(previous.outcome(Delivery.CONFLICT), sent=True))
            outgoing.append(message)
    if outgoing:
        send(outgoing)
        # Audited once sent: money the API moves is on the record with who asked for it, beside the outcome the
        # worker records. A crash between the send and this leaves the payment without its audit row only.
        with uow:
            uow.audit.add_many(
                sender,
                "payment.enqueued",
                "transaction",
                [(m.reference, {"via": "api", "task": m.task, **_audited(m)}) for m in outgoing],
            )
            uow.commit()
    for intake in intakes:
        event = "api.conflict" if intake.conflict else "api.enqueued" if intake.sent else "api.duplicate"
        log_event(event, reference=intake.outcome.reference, sender=sender)
    return intakes
