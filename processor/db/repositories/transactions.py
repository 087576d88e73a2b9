"""Transactions: one row per reference, its outcome, and the later attempts that conflicted with it."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, text, tuple_, union
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, aliased

from processor.db.tables import AccountRow, HeldMessageRow, LedgerEntryRow, TransactionConflictRow, TransactionRow
from processor.domain.book import Posting
from processor.domain.outcomes import Conflict, OutcomeStatus, Reason, Recorded
from processor.domain.records import EntryLine, TransactionDetail, TransactionSummary
from processor.domain.requests import PaymentType
from processor.domain.reversal import Original

_Reversed = aliased(TransactionRow, name="reversed")  # the transaction a reversal reverses
_Reversal = aliased(TransactionRow, name="reversal")  # the applied reversal of a transaction
_SUMMARY_COLUMNS = (
    TransactionRow.id,
    TransactionRow.reference,
    TransactionRow.status,
    TransactionRow.reason,
    TransactionRow.type,
    TransactionRow.amount,
    TransactionRow.currency,
    TransactionRow.source,
    TransactionRow.destination,
    TransactionRow.description,
    TransactionRow.created_at,
    _Reversed.reference.label("reverses"),
)


def _summary(row: Any) -> TransactionSummary:
    return TransactionSummary(
        id=row.id,
        reference=row.reference,
        status=OutcomeStatus(row.status),
        reason=None if row.reason is None else Reason(row.reason),
        type=row.type,
        amount=row.amount,
        currency=row.currency,
        source=row.source,
        destination=row.destination,
        description=row.description,
        at=row.created_at,
        reverses=row.reverses,
    )


@dataclass(frozen=True)
class NewTransaction:
    recorded: Recorded
    type: str | None = None
    source: str | None = None
    destination: str | None = None
    source_account_id: int | None = None
    destination_account_id: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    description: str | None = None
    postings: tuple[Posting, ...] = ()
    reverses_id: int | None = None  # the id of the transaction this one reverses


# One statement for a batch of any size: each column travels as one array.
_INSERT_TRANSACTIONS = text(
    """
    INSERT INTO transactions (reference, type, source, destination, source_account_id, destination_account_id,
                              amount, currency, description, payload, fingerprint, status, reason, errors,
                              reverses_id)
    SELECT reference, type, source, destination, source_account_id, destination_account_id,
           amount, currency, description, payload::jsonb, fingerprint, status, reason, errors::jsonb, reverses_id
    FROM unnest(CAST(:reference AS text[]), CAST(:type AS text[]), CAST(:source AS text[]),
                CAST(:destination AS text[]), CAST(:source_account_id AS bigint[]),
                CAST(:destination_account_id AS bigint[]), CAST(:amount AS numeric[]), CAST(:currency AS text[]),
                CAST(:description AS text[]), CAST(:payload AS text[]), CAST(:fingerprint AS text[]),
                CAST(:status AS text[]), CAST(:reason AS text[]), CAST(:errors AS text[]),
                CAST(:reverses_id AS bigint[]))
         AS v(reference, type, source, destination, source_account_id, destination_account_id,
              amount, currency, description, payload, fingerprint, status, reason, errors, reverses_id)
    ORDER BY reference
    ON CONFLICT (reference) DO NOTHING
    RETURNING reference, id"""
)


class TransactionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def now(self) -> datetime:
        """The transaction's own timestamp, the same on every host."""
        return self.session.execute(select(func.now())).scalar_one()

    def get_by_references(self, references: Collection[str]) -> dict[str, Recorded]:
        if not references:
            return {}
        rows = self.session.execute(
            select(
                TransactionRow.id,
                TransactionRow.reference,
                TransactionRow.status,
                TransactionRow.reason,
                TransactionRow.payload,
                TransactionRow.fingerprint,
                TransactionRow.errors,
            ).where(TransactionRow.reference.in_(references))
        ).all()
        conflicts = self._conflicts([r.id for r in rows])
        return {
            r.reference: Recorded(
                id=r.id,
                reference=r.reference,
                status=OutcomeStatus(r.status),
                reason=None if r.reason is None else Reason(r.reason),
                payload=r.payload,
                fingerprint=r.fingerprint,
                errors=tuple(r.errors or ()),
                conflicts=tuple(conflicts.get(r.id, ())),
            )
            for r in rows
        }

    def _conflicts(self, transaction_ids: Sequence[int]) -> dict[int, list[Conflict]]:
        found: dict[int, list[Conflict]] = {}
        if not transaction_ids:
            return found
        rows = self.session.execute(
            select(
                TransactionConflictRow.transaction_id,
                TransactionConflictRow.fields,
                TransactionConflictRow.payload,
                TransactionConflictRow.fingerprint,
                TransactionConflictRow.created_at,
            )
            .where(TransactionConflictRow.transaction_id.in_(transaction_ids))
            .order_by(TransactionConflictRow.id)
        )
        for r in rows:
            found.setdefault(r.transaction_id, []).append(
                Conflict(tuple(r.fields), r.payload, r.fingerprint, r.created_at)
            )
        return found

    def add_all(self, transactions: Sequence[NewTransaction]) -> dict[str, int]:
        """Insert the transactions in one statement; returns the ids by reference of those inserted.

        A reference that another transaction recorded first is skipped, not an error: it is missing from the result,
        and the caller, which decided its outcome without seeing that record, must roll back and decide again.
        """
        if not transactions:
            return {}
        columns = {
            "reference": [t.recorded.reference for t in transactions],
            "type": [t.type for t in transactions],
            "source": [t.source for t in transactions],
            "destination": [t.destination for t in transactions],
            "source_account_id": [t.source_account_id for t in transactions],
            "destination_account_id": [t.destination_account_id for t in transactions],
            "amount": [t.amount for t in transactions],
            "currency": [t.currency for t in transactions],
            "description": [t.description for t in transactions],
            "payload": [json.dumps(dict(t.recorded.payload)) for t in transactions],
            "fingerprint": [t.recorded.fingerprint for t in transactions],
            "status": [t.recorded.status.value for t in transactions],
            "reason": [None if t.recorded.reason is None else t.recorded.reason.value for t in transactions],
            "errors": [json.dumps(list(t.recorded.errors)) if t.recorded.errors else None for t in transactions],
            "reverses_id": [t.reverses_id for t in transactions],
        }
        # Rows go in by reference: two batches racing for the same references wait for each other's index
        # entries in one order, so they cannot deadlock on them.
        rows = self.session.execute(_INSERT_TRANSACTIONS, columns)
        return {r.reference: r.id for r in rows}

    def add_conflicts(self, conflicts: Sequence[tuple[int, Conflict]]) -> None:
        """Record later attempts that conflicted; one that is already recorded (a redelivery) is skipped."""
        # In one fixed order, like the transactions: batches racing to record the same conflicts (invalid or
        # unknown-account resends lock no account that would queue them) wait in one order, without deadlock.
        unique = {(tid, c.fingerprint): (tid, c) for tid, c in conflicts}
        if unique:
            self.session.execute(
                pg_insert(TransactionConflictRow).on_conflict_do_nothing(
                    index_elements=[TransactionConflictRow.transaction_id, TransactionConflictRow.fingerprint]
                ),
                [
                    {
                        "transaction_id": tid,
                        "fields": list(c.fields),
                        "payload": dict(c.payload),
                        "fingerprint": c.fingerprint,
                    }
                    for tid, c in (unique[key] for key in sorted(unique))
                ],
            )

    def count_outgoing_since(self, account_ids: Collection[int], since: datetime) -> dict[int, int]:
        """Applied outgoing payments per account since a moment (the savings monthly limit)."""
        if not account_ids:
            return {}
        rows = self.session.execute(
            select(TransactionRow.source_account_id, func.count())
            .where(
                TransactionRow.source_account_id.in_(account_ids),
                TransactionRow.created_at >= since,
                TransactionRow.status == OutcomeStatus.APPLIED,
            )
            .group_by(TransactionRow.source_account_id)
        )
        return {account_id: count for account_id, count in rows if account_id is not None}

    def originals(self, references: Collection[str]) -> dict[str, Original]:
        """What reversals need of the transactions they reverse, with the applied reversal each already has."""
        if not references:
            return {}
        rows = self.session.execute(
            select(
                TransactionRow.id,
                TransactionRow.reference,
                TransactionRow.status,
                TransactionRow.reason,
                TransactionRow.type,
                TransactionRow.source,
                TransactionRow.destination,
                TransactionRow.amount,
                TransactionRow.currency,
                _Reversed.reference.label("reverses"),
                _Reversal.reference.label("reversed_by"),
            )
            .outerjoin(_Reversed, _Reversed.id == TransactionRow.reverses_id)
            .outerjoin(
                _Reversal,
                and_(
                    _Reversal.reverses_id == TransactionRow.id,
                    # Stated, though implied, so that the partial indexes of reversals serve the join.
                    _Reversal.reverses_id.is_not(None),
                    _Reversal.status == OutcomeStatus.APPLIED,
                ),
            )
            .where(TransactionRow.reference.in_(references))
        )
        return {
            r.reference: Original(
                id=r.id,
                reference=r.reference,
                status=OutcomeStatus(r.status),
                reason=None if r.reason is None else Reason(r.reason),
                type=None if r.type is None else PaymentType(r.type),
                source=r.source,
                destination=r.destination,
                amount=r.amount,
                currency=r.currency,
                reverses=r.reverses,
                reversed_by=r.reversed_by,
            )
            for r in rows
        }

    def page(
        self,
        limit: int,
        account_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: OutcomeStatus | None = None,
        reason: Reason | None = None,
        after: tuple[datetime, int] | None = None,
    ) -> list[TransactionSummary]:
        """Up to `limit` transactions, newest first, after a (created_at, id) key; filters all optional."""
        t = TransactionRow
        conditions = []
        if start is not None:
            conditions.append(t.created_at >= start)
        if end is not None:
            conditions.append(t.created_at < end)
        if status is not None:
            conditions.append(t.status == status.value)
        if reason is not None:
            # Only a rejection has a reason: saying so lets PostgreSQL walk the small indexes of rejections.
            conditions += [t.reason == reason.value, t.status == OutcomeStatus.REJECTED.value]
        if after is not None:
            conditions.append(tuple_(t.created_at, t.id) < tuple_(*after))
        newest_first = (t.created_at.desc(), t.id.desc())
        query = select(*_SUMMARY_COLUMNS).outerjoin(_Reversed, _Reversed.id == t.reverses_id)
        if account_id is None:
            query = query.where(*conditions)
        else:
            # Each side of the account walks its own index in order and stops at the page's size; an OR of the two
            # would make PostgreSQL read every transaction of a busy account to sort them. UNION, not UNION ALL: a
            # rejected same-account transfer names the account on both sides.
            sides = union(
                *(
                    select(t.id).where(side == account_id, *conditions).order_by(*newest_first).limit(limit)
                    for side in (t.source_account_id, t.destination_account_id)
                )
            ).subquery()
            query = query.join(sides, sides.c.id == t.id)
        rows = self.session.execute(query.order_by(*newest_first).limit(limit))
        return [_summary(r) for r in rows]

    def detail(self, reference: str) -> TransactionDetail | None:
        """All that is recorded under a reference (None if nothing is, not even a held message)."""
        held = tuple(
            self.session.scalars(
                select(HeldMessageRow.id).where(HeldMessageRow.reference == reference).order_by(HeldMessageRow.id)
            )
        )
        row = self.session.execute(
            select(*_SUMMARY_COLUMNS, TransactionRow.payload, TransactionRow.errors)
            .outerjoin(_Reversed, _Reversed.id == TransactionRow.reverses_id)
            .where(TransactionRow.reference == reference)
        ).one_or_none()
        if row is None:
            return TransactionDetail(reference, None, {}, held=held) if held else None
        entries = self.session.execute(
            select(AccountRow.number, LedgerEntryRow.amount, LedgerEntryRow.balance_after, LedgerEntryRow.created_at)
            .join(AccountRow, AccountRow.id == LedgerEntryRow.account_id)
            .where(LedgerEntryRow.transaction_id == row.id)
            .order_by(LedgerEntryRow.id)
        )
        reversals = self.session.execute(
            select(TransactionRow.reference, TransactionRow.status)
            .where(TransactionRow.reverses_id == row.id)
            .order_by(TransactionRow.id)
        ).all()
        return TransactionDetail(
            reference=reference,
            transaction=_summary(row),
            request=dict(row.payload),
            errors=tuple(row.errors or ()),
            conflicts=tuple(self._conflicts([row.id]).get(row.id, ())),
            entries=tuple(EntryLine(e.number, e.amount, e.balance_after, e.created_at) for e in entries),
            reversed_by=next((r.reference for r in reversals if r.status == OutcomeStatus.APPLIED), None),
            rejected_reversals=tuple(r.reference for r in reversals if r.status == OutcomeStatus.REJECTED),
            held=held,
        )
