"""Console users: made by an operator at the command line, checked at the console's login."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from processor.db.uow import UnitOfWork
from processor.domain.users import User, UserExists, check_password, parse_role, parse_username
from processor.logs import log_event


@cache
def _hasher() -> PasswordHasher:
    # Argon2id with argon2-cffi's defaults (RFC 9106's second recommended profile).
    return PasswordHasher()


@cache
def _decoy_hash() -> str:
    # Checked against when no such user exists, so that a wrong username takes as long as a wrong password.
    return _hasher().hash("no such user, and no password matches this")


def create_user(uow: UnitOfWork, username: str, role: str, password: str, actor: str) -> User:
    """Add a console user with a role, the password stored only as its hash; audited."""
    name = parse_username(username)
    user_role = parse_role(role)
    check_password(password)
    password_hash = _hasher().hash(password)
    with uow:
        user = uow.users.add(name, user_role, password_hash)
        if user is None:
            raise UserExists(name)
        uow.audit.add(actor, "user.created", "user", name, role=user_role.value)
        uow.commit()
    log_event("user.created", username=name, role=user_role, actor=actor)
    return user


def authenticate(uow: UnitOfWork, username: str, password: str) -> User | None:
    """The user whose username and password these are, or None (the same None whichever of the two was wrong)."""
    with uow:
        found = uow.users.with_hash(username.strip().lower())
    try:
        _hasher().verify(_decoy_hash() if found is None else found[1], password)
    except (VerificationError, InvalidHashError):
        return None
    return None if found is None else found[0]


def get_user(uow: UnitOfWork, user_id: int) -> User | None:
    """A user by id, as the console's session names them; None when there is none (any more)."""
    with uow:
        return uow.users.get(user_id)
