"""API tokens: made, listed and revoked by operators (audited), and checked on every request to the HTTP API."""

from __future__ import annotations

from processor.db.uow import UnitOfWork
from processor.domain.tokens import ApiToken, TokenNotFound, digest, new_secret, parse_token_name


def create_token(uow: UnitOfWork, name: str, actor: str) -> tuple[ApiToken, str]:
    """A new token and its secret, which is returned this once and stored only as its digest."""
    name = parse_token_name(name)
    secret = new_secret()
    with uow:
        token = uow.tokens.add(name, digest(secret), actor)
        # The audit entry names the token by id and name: the secret never goes into a log or the database.
        uow.audit.add(actor, "api_token.created", "api_token", str(token.id), name=name)
        uow.commit()
    return token, secret


def list_tokens(uow: UnitOfWork) -> list[ApiToken]:
    """Every token, revoked ones included, oldest first."""
    with uow:
        return uow.tokens.all()


def revoke_token(uow: UnitOfWork, token_id: int, actor: str) -> ApiToken:
    """Revoke a token: from the next request on it is refused. Revoking a revoked token changes nothing."""
    with uow:
        before = uow.tokens.get_for_update(token_id)
        if before is None:
            raise TokenNotFound(token_id)
        if not before.active:
            return before
        token = uow.tokens.revoke(token_id)
        uow.audit.add(actor, "api_token.revoked", "api_token", str(token.id), name=token.name)
        uow.commit()
    return token


def authenticate(uow: UnitOfWork, secret: str) -> ApiToken | None:
    """The active token whose secret this is, or None."""
    # Looked up by digest: comparing digests leaks nothing of the secret, whatever the index's timing shows.
    with uow:
        return uow.tokens.active_by_digest(digest(secret))
