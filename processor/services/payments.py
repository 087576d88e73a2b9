from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace

from processor.db.repositories import NewTransaction
from processor.db.transient import LostRace
from processor.db.uow import UnitOfWork
from processor.domain.accounts import AccountType
from processor.domain.book import Book, Policy, month_start
from processor.domain.outcomes import Conflict, Delivery, Outcome, OutcomeStatus, Reason, Recorded, differing_fields
from processor.domain.requests import InvalidPayment, PaymentRequest
from processor.domain.reversal import Original, check_reversible
from processor.logs import log_event

Request = PaymentRequest | InvalidPayment


def apply_payments(
    uow: UnitOfWork, requests: Sequence[Request], policy: Policy, actor: str = "processor"
) -> list[Outcome]:
    """Apply a batch of payment requests in one transaction: one outcome per request, one effect per reference."""
    # Each lost race shows this batch one more recorded reference when it is decided again, so it cannot lose more
    # often than it has references; the bound only guards against a bug.
    attempts = len({r.reference for r in requests}) + 1
    for attempt in range(1, attempts + 1):
        try:
            outcomes = _apply_once(uow, requests, policy, actor)
            break
        except LostRace:
            if attempt == attempts:
                raise
    for outcome in outcomes:
        _log(outcome, actor)
    return outcomes


def _apply_once(uow: UnitOfWork, requests: Sequence[Request], policy: Policy, actor: str) -> list[Outcome]:
    with uow:
        # Accounts first (one statement, in id order), then what is recorded for the references. Two deliveries of
        # one payment lock the same accounts, so the second reads the first's outcome once it may go on. A
        # reference recorded meanwhile under another payload, or with no account to lock, is caught by the
        # unique index when the outcomes are inserted: this attempt is then rolled back and decided again.
        valid = [r for r in requests if isinstance(r, PaymentRequest)]
        locked = uow.accounts.get_for_update(
            {number for r in valid for number in r.accounts},
            {r.settlement for r in valid if r.settlement is not None},
        )
        recorded = uow.transactions.get_by_references({r.reference for r in requests})
        # Reversals are checked here, after the locks: of two reversals of one transaction, the second reads the
        # first once it has committed, and is refused.
        reversing = {r.reverses for r in valid if r.reverses is not None and r.reference not in recorded}
        originals = uow.transactions.originals(reversing) if reversing else {}
        savings = [a.id for a in locked if a.type is AccountType.SAVINGS]
        since = month_start(uow.transactions.now(), policy.zone)
        counts = uow.transactions.count_outgoing_since(savings, since) if savings else {}
        book = Book.of(locked, counts, policy)

        outcomes: list[Outcome] = []
        new: list[NewTransaction] = []
        conflicts: list[tuple[str, Conflict]] = []
        for request in requests:
            previous = recorded.get(request.reference)
            if previous is None:
                transaction = _record(book, request, originals)
                new.append(transaction)
                recorded[request.reference] = transaction.recorded
                outcomes.append(transaction.recorded.outcome())
            elif request.fingerprint() == previous.fingerprint:
                outcomes.append(previous.outcome(Delivery.DUPLICATE))
            else:
                fingerprint = request.fingerprint()
                if all(c.fingerprint != fingerprint for c in previous.conflicts):
                    attempt = request.payload()
                    conflict = Conflict(tuple(differing_fields(previous.payload, attempt)), attempt, fingerprint)
                    previous = replace(previous, conflicts=(*previous.conflicts, conflict))
                    recorded[request.reference] = previous
                    conflicts.append((request.reference, conflict))
                outcomes.append(previous.outcome(Delivery.CONFLICT))

        ids = uow.transactions.add_all(new)
        if len(ids) != len(new):
            raise LostRace(f"{len(new) - len(ids)} reference(s) were recorded by another transaction meanwhile")
        ids.update({r.reference: r.id for r in recorded.values() if r.id is not None})
        uow.ledger.add_entries(new, ids)
        _audit_reversals(uow, new, actor)
        uow.transactions.add_conflicts([(ids[reference], conflict) for reference, conflict in conflicts])
        uow.accounts.save_balances(list(book.changed.values()))
        uow.commit()
    return outcomes


def get_outcome(uow: UnitOfWork, reference: str) -> Outcome:
    """The recorded outcome of a reference, with its conflicting attempts; pending when none is recorded."""
    return get_outcomes(uow, [reference])[reference]


def get_outcomes(uow: UnitOfWork, references: Collection[str]) -> dict[str, Outcome]:
    """The outcomes of many references in one query; pending for those with none recorded."""
    with uow:
        recorded = uow.transactions.get_by_references(references)
    return {
        reference: recorded[reference].outcome()
        if reference in recorded
        else Outcome(reference=reference, status=OutcomeStatus.PENDING)
        for reference in references
    }


def _record(book: Book, request: Request, originals: dict[str, Original]) -> NewTransaction:
    if isinstance(request, InvalidPayment):
        recorded = Recorded(
            reference=request.reference,
            status=OutcomeStatus.REJECTED,
            reason=Reason.INVALID_REQUEST,
            payload=request.payload(),
            fingerprint=request.fingerprint(),
            errors=tuple(str(e) for e in request.errors),
        )
        return NewTransaction(recorded)
    reverses_id = None
    if request.reverses is not None:
        original = originals.get(request.reverses)
        if original is None:
            raise LookupError(f"{request.reference}: reverses {request.reverses}, which is not recorded")
        check_reversible(original, request.reference)
        reverses_id = original.id
    decision = book.apply(request)
    recorded = Recorded(
        reference=request.reference,
        status=OutcomeStatus.APPLIED if decision.applied else OutcomeStatus.REJECTED,
        reason=decision.reason,
        payload=request.payload(),
        fingerprint=request.fingerprint(),
    )
    return NewTransaction(
        recorded,
        type=request.type.value,
        source=request.source,
        destination=request.destination,
        source_account_id=book.account_id(request.source),
        destination_account_id=book.account_id(request.destination),
        amount=request.amount,
        currency=request.currency,
        description=request.description,
        postings=decision.postings,
        reverses_id=reverses_id,
    )


def _audit_reversals(uow: UnitOfWork, new: Sequence[NewTransaction], actor: str) -> None:
    """A reversal's audit entry, in its own transaction: recorded once, whether the rules applied it or not."""
    for t in new:
        if t.reverses_id is None:
            continue
        r = t.recorded
        uow.audit.add(
            actor,
            "transaction.reversed" if r.status is OutcomeStatus.APPLIED else "transaction.reversal_rejected",
            "transaction",
            str(r.payload["reverses"]),
            reversal=r.reference,
            reason=t.description,
            status=r.status.value,
            rejection=None if r.reason is None else r.reason.value,
        )


def _log(outcome: Outcome, actor: str) -> None:
    if outcome.delivery is Delivery.CONFLICT:
        event, level = "payment.conflict", logging.WARNING
    elif outcome.delivery is Delivery.DUPLICATE:
        event, level = "payment.duplicate", logging.INFO
    else:
        event, level = f"payment.{outcome.status}", logging.INFO
    log_event(event, level, reference=outcome.reference, outcome=outcome.status, reason=outcome.reason, actor=actor)
