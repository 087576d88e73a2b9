"""Counts over a period, for `processor stats`: one aggregate statement per table, no row comes back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from processor.db.tables import HeldMessageRow, TransactionConflictRow, TransactionRow


class StatsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def outcomes(self, start: datetime, end: datetime) -> list[tuple[str, str | None, int]]:
        """(status, reason, count) of the transactions recorded in [start, end)."""
        rows = self.session.execute(
            select(TransactionRow.status, TransactionRow.reason, func.count())
            .where(TransactionRow.created_at >= start, TransactionRow.created_at < end)
            .group_by(TransactionRow.status, TransactionRow.reason)
        )
        return [(status, reason, count) for status, reason, count in rows]

    def conflicts(self, start: datetime, end: datetime) -> int:
        return self.session.execute(
            select(func.count()).where(
                TransactionConflictRow.created_at >= start, TransactionConflictRow.created_at < end
            )
        ).scalar_one()

    def held(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
        """Held messages: how many in [start, end), how many in all, and when the oldest was held."""
        in_period = func.count().filter(HeldMessageRow.at >= start, HeldMessageRow.at < end)
        row = self.session.execute(select(in_period, func.count(), func.min(HeldMessageRow.at))).one()
        return row[0], row[1], row[2]
