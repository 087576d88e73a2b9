"""The audit log: who did what to which entity, and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select
from sqlalchemy.orm import Session

from processor.db.tables import AuditLogRow


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, actor: str, action: str, entity_type: str, entity: str, **details: Any) -> None:
        self.session.execute(
            insert(AuditLogRow).values(
                actor=actor, action=action, entity_type=entity_type, entity=entity, details=details
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
