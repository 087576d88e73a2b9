"""Held messages: what no outcome could be recorded for, kept for operators."""

from __future__ import annotations

from sqlalchemy import cast, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import HeldMessageRow
from processor.domain.held import HeldMessage, HeldReason


class HeldMessageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, held: HeldMessage) -> int:
        """The held message's id; the one already held under its task id with the same content, so each is held once."""
        held_id = self.session.execute(
            pg_insert(HeldMessageRow)
            .values(
                reason=held.reason.value,
                task=held.task,
                task_id=held.task_id,
                reference=held.reference,
                message=dict(held.message),
                error=held.error,
            )
            .on_conflict_do_nothing(index_elements=[HeldMessageRow.task_id, HeldMessageRow.content_digest])
            .returning(HeldMessageRow.id)
        ).scalar_one_or_none()
        if held_id is None:
            held_id = self.session.scalars(
                select(HeldMessageRow.id).where(
                    HeldMessageRow.task_id == held.task_id,
                    HeldMessageRow.task == held.task,
                    HeldMessageRow.message == cast(dict(held.message), JSONB),
                )
            ).one()
        return held_id

    def latest(self, limit: int) -> list[HeldMessage]:
        rows = self.session.scalars(select(HeldMessageRow).order_by(HeldMessageRow.id.desc()).limit(limit))
        return [
            HeldMessage(
                reason=HeldReason(row.reason),
                task=row.task,
                task_id=row.task_id,
                reference=row.reference,
                message=row.message,
                error=row.error,
                id=row.id,
                at=row.at,
            )
            for row in reversed(list(rows))
        ]
