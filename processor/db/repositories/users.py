"""Console users, by username or id."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import UserRow
from processor.domain.users import Role, User


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, username: str, role: Role, password_hash: str) -> User | None:
        """Insert a user; None when the username is taken (the unique index decides)."""
        row = self.session.execute(
            pg_insert(UserRow)
            .values(username=username, role=role.value, password_hash=password_hash)
            .on_conflict_do_nothing(index_elements=[UserRow.username])
            .returning(UserRow.id)
        ).one_or_none()
        return None if row is None else User(row.id, username, role)

    def with_hash(self, username: str) -> tuple[User, str] | None:
        row = self.session.execute(
            select(UserRow.id, UserRow.username, UserRow.role, UserRow.password_hash).where(
                UserRow.username == username
            )
        ).one_or_none()
        return None if row is None else (User(row.id, row.username, Role(row.role)), row.password_hash)

    def get(self, user_id: int) -> User | None:
        row = self.session.execute(
            select(UserRow.id, UserRow.username, UserRow.role).where(UserRow.id == user_id)
        ).one_or_none()
        return None if row is None else User(row.id, row.username, Role(row.role))
