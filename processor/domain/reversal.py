"""Reversal: an applied transaction undone by a new one that posts the opposite entries, under the same rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from processor.domain.errors import InvalidValue, NotReversible
from processor.domain.outcomes import OutcomeStatus, Reason
from processor.domain.requests import PaymentRequest, PaymentType, parse_description

OPPOSITE = {
    PaymentType.DEPOSIT: PaymentType.WITHDRAWAL,
    PaymentType.WITHDRAWAL: PaymentType.DEPOSIT,
    PaymentType.TRANSFER: PaymentType.TRANSFER,
}


@dataclass(frozen=True)
class Original:
    """What a reversal needs to know of the transaction it reverses."""

    id: int
    reference: str
    status: OutcomeStatus
    reason: Reason | None
    type: PaymentType | None
    source: str | None
    destination: str | None
    amount: Decimal | None
    currency: str | None
    reverses: str | None  # set when the original is itself a reversal
    reversed_by: str | None  # the reference of its applied reversal, if it has one


def parse_reversal_reason(value: str) -> str:
    reason = parse_description(value.strip())
    if not reason:
        raise InvalidValue("reason", "say why the transaction is reversed; it goes into the audit log")
    return reason


def check_reversible(original: Original, reference: str) -> None:
    """Refuse what has nothing to reverse, or has been reversed by another reference already."""
    if original.status is not OutcomeStatus.APPLIED:
        raise NotReversible(
            f"transaction {original.reference} was {original.status} ({original.reason}): it moved no money,"
            " so there is nothing to reverse"
        )
    if original.reverses is not None:
        raise NotReversible(
            f"transaction {original.reference} is the reversal of {original.reverses}; it is not reversed in turn"
            " (send a new payment instead)"
        )
    if original.reversed_by is not None and original.reversed_by != reference:
        raise NotReversible(f"transaction {original.reference} was reversed already, by {original.reversed_by}")


def reversal_of(original: Original, reference: str, reason: str) -> PaymentRequest:
    """The request that posts the opposite entries of an applied transaction: its accounts swapped."""
    check_reversible(original, reference)
    if original.type is None or original.amount is None or original.currency is None:
        raise NotReversible(f"transaction {original.reference} has no complete payment to reverse")
    return PaymentRequest(
        reference=reference,
        type=OPPOSITE[original.type],
        amount=original.amount,
        currency=original.currency,
        source=original.destination,
        destination=original.source,
        description=reason,
        reverses=original.reference,
    )
