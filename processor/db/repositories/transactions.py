"""Transactions: one row per reference, its outcome, and the later attempts that conflicted with it."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import TransactionConflictRow, TransactionRow
from processor.domain.book import Posting
from processor.domain.outcomes import Conflict, OutcomeStatus, Reason, Recorded


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


# One statement for a batch of any size: each column travels as one array.
_INSERT_TRANSACTIONS = text(
    """
    INSERT INTO transactions (reference, type, source, destination, source_account_id, destination_account_id,
                              amount, currency, description, payload, fingerprint, status, reason, errors)
    SELECT reference, type, source, destination, source_account_id, destination_account_id,
           amount, currency, description, payload::jsonb, fingerprint, status, reason, errors::jsonb
    FROM unnest(CAST(:reference AS text[]), CAST(:type AS text[]), CAST(:source AS text[]),
                CAST(:destination AS text[]), CAST(:source_account_id AS bigint[]),
                CAST(:destination_account_id AS bigint[]), CAST(:amount AS numeric[]), CAST(:currency AS text[]),
                CAST(:description AS text[]), CAST(:payload AS text[]), CAST(:fingerprint AS text[]),
                CAST(:status AS text[]), CAST(:reason AS text[]), CAST(:errors AS text[]))
         AS v(reference, type, source, destination, source_account_id, destination_account_id,
              amount, currency, description, payload, fingerprint, status, reason, errors)
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
