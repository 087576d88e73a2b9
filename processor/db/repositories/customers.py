"""Customers: registered once per email."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import CustomerRow
from processor.domain.accounts import Customer


class CustomerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, email: str) -> Customer | None:
        """Insert a customer; None when the email is taken (race-free: the unique index decides)."""
        row = self.session.execute(
            pg_insert(CustomerRow)
            .values(name=name, email=email)
            .on_conflict_do_nothing(index_elements=[CustomerRow.email])
            .returning(CustomerRow.number, CustomerRow.name, CustomerRow.email)
        ).one_or_none()
        return None if row is None else Customer(row.number, row.name, row.email)

    def get_by_number(self, number: int) -> Customer | None:
        row = self.session.execute(
            select(CustomerRow.number, CustomerRow.name, CustomerRow.email).where(CustomerRow.number == number)
        ).one_or_none()
        return None if row is None else Customer(row.number, row.name, row.email)

    def get_id_by_number(self, number: int) -> int | None:
        return self.session.scalar(select(CustomerRow.id).where(CustomerRow.number == number))
