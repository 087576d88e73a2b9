"""Ledger entries, the one owner of them: writing, reading a statement, and the invariants `verify` checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, case, func, select, text, tuple_
from sqlalchemy.orm import Session, aliased

from processor.db.repositories.transactions import NewTransaction
from processor.db.tables import LedgerEntryRow, TransactionRow
from processor.domain.ledger import StatementEntry, Violation
from processor.domain.money import ZERO

_Reversed = aliased(TransactionRow, name="reversed")
# Rows a streamed statement holds at once: memory stays flat however many entries the range has.
STREAM_BATCH = 1000

# In posting order (WITH ORDINALITY): entry ids order an account's entries, and verify checks the running balance.
_INSERT_ENTRIES = text(
    """
    INSERT INTO ledger_entries (transaction_id, account_id, amount, balance_after)
    SELECT transaction_id, account_id, amount, balance_after
    FROM unnest(CAST(:transaction_id AS bigint[]), CAST(:account_id AS bigint[]), CAST(:amount AS numeric[]),
                CAST(:balance_after AS numeric[])) WITH ORDINALITY
         AS v(transaction_id, account_id, amount, balance_after, position)
    ORDER BY position"""
)

# Each check returns rows that break one invariant of the ledger; an empty result is a pass.
_INVARIANTS: dict[str, str] = {
    "balance_equals_entries": """
        SELECT a.number, a.balance, COALESCE(SUM(e.amount), 0) AS entries
        FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
        GROUP BY a.id HAVING a.balance <> COALESCE(SUM(e.amount), 0)""",
    "balance_after_is_running_total": """
        SELECT number, entry, balance_after, running FROM (
            SELECT a.number, e.id AS entry, e.balance_after,
                   SUM(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
            FROM ledger_entries e JOIN accounts a ON a.id = e.account_id) t
        WHERE balance_after <> running""",
    "transaction_entries_sum_to_zero": """
        SELECT t.reference, SUM(e.amount) AS total
        FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id
        GROUP BY t.id HAVING SUM(e.amount) <> 0""",
    "applied_has_entries": """
        SELECT t.reference FROM transactions t
        WHERE t.status = 'applied'
          AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "rejected_has_no_entries": """
        SELECT t.reference FROM transactions t
        WHERE t.status = 'rejected'
          AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "balance_above_floor": """
        SELECT number, type, balance, overdraft_limit FROM accounts
        WHERE type <> 'settlement'
          AND balance < CASE WHEN type = 'standard' THEN -overdraft_limit ELSE 0 END""",
    "balances_sum_to_zero": """
        SELECT currency, SUM(balance) AS total FROM accounts
        GROUP BY currency HAVING SUM(balance) <> 0""",
    "reversal_reverses_an_applied_payment": """
        SELECT r.reference AS reversal, o.reference AS original, o.status AS original_status
        FROM transactions r JOIN transactions o ON o.id = r.reverses_id
        WHERE r.reverses_id IS NOT NULL AND r.status = 'applied'
          AND (o.status <> 'applied' OR o.reverses_id IS NOT NULL
               OR r.amount <> o.amount OR r.currency <> o.currency)""",
    # Customer accounts only: the bank's side may post against another settlement slot than the original did.
    "reversal_mirrors_original": """
        SELECT r.reference AS reversal, o.reference AS original, a.number AS account, SUM(e.amount) AS net
        FROM transactions r JOIN transactions o ON o.id = r.reverses_id
             JOIN ledger_entries e ON e.transaction_id IN (r.id, o.id)
             JOIN accounts a ON a.id = e.account_id
        WHERE r.reverses_id IS NOT NULL AND r.status = 'applied' AND a.type <> 'settlement'
        GROUP BY r.id, o.id, a.id HAVING SUM(e.amount) <> 0""",
}


class LedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find_violations(self) -> list[Violation]:
        found = []
        for check, query in _INVARIANTS.items():
            for row in self.session.execute(text(query)).mappings():
                found.append(Violation(check, {key: str(value) for key, value in row.items()}))
        return found

    def add_entries(self, transactions: Sequence[NewTransaction], ids: dict[str, int]) -> None:
        """Write each transaction's postings as ledger entries, in one statement; `ids` maps references to ids."""
        postings = [(ids[t.recorded.reference], p) for t in transactions for p in t.postings]
        if postings:
            self.session.execute(
                _INSERT_ENTRIES,
                {
                    "transaction_id": [tid for tid, _ in postings],
                    "account_id": [p.account_id for _, p in postings],
                    "amount": [p.amount for _, p in postings],
                    "balance_after": [p.balance_after for _, p in postings],
                },
            )

    def _statement_query(
        self,
        account_id: int,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, int] | None,
    ) -> Select[Any]:
        e, t = LedgerEntryRow, TransactionRow
        # The other customer account of a transfer; for the bank's settlement side, the customer's account.
        counterparty = case(
            (t.source_account_id == e.account_id, t.destination),
            (t.destination_account_id == e.account_id, t.source),
            else_=func.coalesce(t.destination, t.source),
        )
        conditions = [e.account_id == account_id]
        if start is not None:
            conditions.append(e.created_at >= start)
        if end is not None:
            conditions.append(e.created_at < end)
        if after is not None:
            conditions.append(tuple_(e.created_at, e.id) > tuple_(*after))
        return (
            select(
                e.id,
                t.reference,
                e.amount,
                e.balance_after,
                e.created_at,
                t.type,
                counterparty.label("counterparty"),
                t.description,
                _Reversed.reference.label("reverses"),
            )
            .join(t, e.transaction_id == t.id)
            .outerjoin(_Reversed, _Reversed.id == t.reverses_id)
            .where(*conditions)
            .order_by(e.created_at, e.id)
        )

    def statement_page(
        self,
        account_id: int,
        limit: int,
        start: datetime | None = None,
        end: datetime | None = None,
        after: tuple[datetime, int] | None = None,
    ) -> list[StatementEntry]:
        """Up to `limit` entries of an account in a range, oldest first, after an (at, id) key."""
        rows = self.session.execute(self._statement_query(account_id, start, end, after).limit(limit))
        return [_entry(r) for r in rows]

    def stream_statement(
        self,
        account_id: int,
        start: datetime | None = None,
        end: datetime | None = None,
        after: tuple[datetime, int] | None = None,
        limit: int | None = None,
    ) -> Iterator[StatementEntry]:
        """The same entries, read through a server-side cursor STREAM_BATCH rows at a time."""
        query = self._statement_query(account_id, start, end, after)
        if limit is not None:
            query = query.limit(limit)
        for row in self.session.execute(query.execution_options(yield_per=STREAM_BATCH)):
            yield _entry(row)

    def balance_before(self, account_id: int, moment: datetime | None) -> Decimal:
        """The account's balance after its last entry before a moment (its latest balance when None)."""
        e = LedgerEntryRow
        query = select(e.balance_after).where(e.account_id == account_id)
        if moment is not None:
            query = query.where(e.created_at < moment)
        found = self.session.scalar(query.order_by(e.created_at.desc(), e.id.desc()).limit(1))
        return ZERO if found is None else found


def _entry(row: Row[Any]) -> StatementEntry:
    return StatementEntry(
        reference=row.reference,
        amount=row.amount,
        balance_after=row.balance_after,
        at=row.created_at,
        type=row.type,
        counterparty=row.counterparty,
        description=row.description,
        reverses=row.reverses,
        id=row.id,
    )
