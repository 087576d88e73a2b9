"""Ledger entries, the one owner of them: writing, reading a statement, and the invariants `verify` checks."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from processor.db.repositories.transactions import NewTransaction
from processor.db.tables import LedgerEntryRow, TransactionRow
from processor.domain.ledger import StatementEntry, Violation

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

    def statement(self, account_id: int) -> list[StatementEntry]:
        rows = self.session.execute(
            select(
                TransactionRow.reference,
                LedgerEntryRow.amount,
                LedgerEntryRow.balance_after,
                LedgerEntryRow.created_at,
            )
            .join(TransactionRow, LedgerEntryRow.transaction_id == TransactionRow.id)
            .where(LedgerEntryRow.account_id == account_id)
            .order_by(LedgerEntryRow.id)
        )
        return [StatementEntry(r.reference, r.amount, r.balance_after, r.created_at) for r in rows]
