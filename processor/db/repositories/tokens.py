"""API tokens by id and by the digest of their secret."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from processor.db.tables import ApiTokenRow
from processor.domain.tokens import ApiToken


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(row.id, row.name, row.created_at, row.created_by, row.revoked_at)


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, token_sha256: str, created_by: str) -> ApiToken:
        row = self.session.scalars(
            insert(ApiTokenRow)
            .values(name=name, token_sha256=token_sha256, created_by=created_by)
            .returning(ApiTokenRow)
        ).one()
        return _token(row)

    def all(self) -> list[ApiToken]:
        return [_token(r) for r in self.session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))]

    def active_by_digest(self, token_sha256: str) -> ApiToken | None:
        row = self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.token_sha256 == token_sha256, ApiTokenRow.revoked_at.is_(None))
        ).one_or_none()
        return None if row is None else _token(row)

    def get_for_update(self, token_id: int) -> ApiToken | None:
        row = self.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.id == token_id).with_for_update()
        ).one_or_none()
        return None if row is None else _token(row)

    def revoke(self, token_id: int) -> ApiToken:
        row = self.session.scalars(
            update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(revoked_at=func.now()).returning(ApiTokenRow)
        ).one()
        return _token(row)
