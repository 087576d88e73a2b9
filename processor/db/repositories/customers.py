"""Customers: registered once per email."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
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

    def page(self, limit: int, search: str | None = None, after: int | None = None) -> list[Customer]:
        """Up to `limit` customers by number, after a number; those whose name or email contains `search`."""
        query = select(CustomerRow.number, CustomerRow.name, CustomerRow.email)
        if search:
            # Matched as text, whatever it holds: % and _ are not wildcards here.
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            matches: list[ColumnElement[bool]] = [CustomerRow.name.ilike(pattern), CustomerRow.email.ilike(pattern)]
            if search.isdigit() and len(search) <= 18:
                matches.append(CustomerRow.number == int(search))
            query = query.where(or_(*matches))
        if after is not None:
            query = query.where(CustomerRow.number > after)
        rows = self.session.execute(query.order_by(CustomerRow.number).limit(limit))
        return [Customer(r.number, r.name, r.email) for r in rows]
