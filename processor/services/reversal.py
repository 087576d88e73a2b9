from __future__ import annotations

import uuid

from processor.db.uow import UnitOfWork
from processor.domain.book import Policy
from processor.domain.errors import InvalidValue, TransactionNotFound
from processor.domain.outcomes import Outcome
from processor.domain.requests import parse_reference
from processor.domain.reversal import parse_reversal_reason, reversal_of
from processor.services.payments import apply_payments


def new_reversal_reference() -> str:
    return f"rev-{uuid.uuid4().hex}"


def reverse_transaction(
    uow: UnitOfWork,
    reference: str,
    reason: str,
    actor: str,
    policy: Policy,
    new_reference: str | None = None,
) -> Outcome:
    """Post the opposite entries of an applied transaction under a new reference, through the payments' own path.

    The rules apply as to any payment (a reversal that would break a floor or a status rule is recorded as
    rejected); one applied reversal per transaction; audited with actor and reason; a rerun with the same new
    reference returns the recorded outcome as a duplicate.
    """
    reference = parse_reference(reference)
    reason = parse_reversal_reason(reason)
    new_reference = new_reversal_reference() if new_reference is None else parse_reference(new_reference)
    if new_reference == reference:
        raise InvalidValue("reference", "a reversal needs a reference of its own, not the original's")
    with uow:
        original = uow.transactions.originals([reference]).get(reference)
        taken = uow.transactions.get_by_references([new_reference]).get(new_reference)
    if original is None:
        raise TransactionNotFound(reference)
    if taken is not None and taken.payload.get("reverses") != reference:
        # Sent on, it would be recorded as a conflicting attempt against an unrelated payment.
        raise InvalidValue("reference", f"{new_reference} is already the reference of another transaction")
    request = reversal_of(original, new_reference, reason)
    [outcome] = apply_payments(uow, [request], policy, actor=actor)
    return outcome
