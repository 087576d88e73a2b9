"""Held messages: what no outcome could be recorded for, kept for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, cast, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import HeldMessageRow, TransactionRow
from processor.domain.held import HeldMessage, HeldReason

_HELD_COLUMNS = (
    HeldMessageRow.id,
    HeldMessageRow.at,
    HeldMessageRow.reason,
    HeldMessageRow.task,
    HeldMessageRow.task_id,
    HeldMessageRow.reference,
    HeldMessageRow.message,
    HeldMessageRow.error,
    HeldMessageRow.resent_at,
    HeldMessageRow.resends,
    HeldMessageRow.resolved_at,
    HeldMessageRow.resolved_by,
    HeldMessageRow.resolution,
    TransactionRow.status.label("outcome"),
)


def _select_held() -> Any:
    # The outcome now recorded for the held message's reference: after a resend, the operator sees it settled.
    return select(*_HELD_COLUMNS).outerjoin(TransactionRow, TransactionRow.reference == HeldMessageRow.reference)


def _held(row: Row[Any]) -> HeldMessage:
    return HeldMessage(
        reason=HeldReason(row.reason),
        task=row.task,
        task_id=row.task_id,
        reference=row.reference,
        message=row.message,
        error=row.error,
        id=row.id,
        at=row.at,
        resent_at=row.resent_at,
        resends=row.resends,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        resolution=row.resolution,
        outcome=row.outcome,
    )


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
        rows = self.session.execute(_select_held().order_by(HeldMessageRow.id.desc()).limit(limit))
        return [_held(row) for row in reversed(list(rows))]

    def page(self, limit: int, include_resolved: bool = False, after: int | None = None) -> list[HeldMessage]:
        """Up to `limit` held messages, newest first, after an id; the open ones only unless told otherwise."""
        query = _select_held()
        if not include_resolved:
            query = query.where(HeldMessageRow.resolved_at.is_(None))
        if after is not None:
            query = query.where(HeldMessageRow.id < after)
        rows = self.session.execute(query.order_by(HeldMessageRow.id.desc()).limit(limit))
        return [_held(row) for row in rows]

    def get_for_update(self, held_id: int) -> HeldMessage | None:
        """A held message, locked so that two operators acting on it at once take turns."""
        row = self.session.execute(
            _select_held().where(HeldMessageRow.id == held_id).with_for_update(of=HeldMessageRow)
        ).one_or_none()
        return None if row is None else _held(row)

    def mark_resent(self, held_id: int) -> datetime:
        return self.session.execute(
            update(HeldMessageRow)
            .where(HeldMessageRow.id == held_id)
            .values(resent_at=func.now(), resends=HeldMessageRow.resends + 1)
            .returning(func.coalesce(HeldMessageRow.resent_at, func.now()))
        ).scalar_one()

    def resolve(self, held_id: int, actor: str, note: str) -> datetime:
        return self.session.execute(
            update(HeldMessageRow)
            .where(HeldMessageRow.id == held_id)
            .values(resolved_at=func.now(), resolved_by=actor, resolution=note)
            .returning(func.coalesce(HeldMessageRow.resolved_at, func.now()))
        ).scalar_one()
