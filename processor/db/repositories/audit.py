"""The audit log: who did what to which entity, and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.orm import Session

from processor.db.tables import AuditLogRow
from processor.domain.records import AuditEntry


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, actor: str, action: str, entity_type: str, entity: str, **details: Any) -> None:
        self.session.execute(
            insert(AuditLogRow).values(
                actor=actor, action=action, entity_type=entity_type, entity=entity, details=details
            )
        )

    def add_many(
        self, actor: str, action: str, entity_type: str, entries: Sequence[tuple[str, dict[str, Any]]]
    ) -> None:
        """One audit row per (entity, details), in one statement."""
        if entries:
            self.session.execute(
                insert(AuditLogRow).values(
                    [
                        {"actor": actor, "action": action, "entity_type": entity_type, "entity": e, "details": d}
                        for e, d in entries
                    ]
                )
            )

    def for_entity(self, entity_type: str, entity: str) -> list[Row[Any]]:
        return list(
            self.session.execute(
                select(AuditLogRow.at, AuditLogRow.actor, AuditLogRow.action, AuditLogRow.details)
                .where(AuditLogRow.entity_type == entity_type, AuditLogRow.entity == entity)
                .order_by(AuditLogRow.id)
            )
        )

    def page(
        self, limit: int, entity_type: str | None = None, entity: str | None = None, after: int | None = None
    ) -> list[AuditEntry]:
        """Up to `limit` entries, newest first, after an id; for one entity when it is named."""
        query = select(AuditLogRow)
        if entity_type is not None:
            query = query.where(AuditLogRow.entity_type == entity_type, AuditLogRow.entity == entity)
        if after is not None:
            query = query.where(AuditLogRow.id < after)
        rows = self.session.scalars(query.order_by(AuditLogRow.id.desc()).limit(limit))
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.entity_type, r.entity, dict(r.details)) for r in rows]
