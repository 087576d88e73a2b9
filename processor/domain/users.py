"""Console users: who may log in to the operator console, and what their role lets them do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from processor.domain.errors import InvalidValue, ProcessorError, quoted

USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")
# NIST SP 800-63B: at least 8; a console that can freeze accounts asks for more.
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


class Role(StrEnum):
    """A viewer reads; an operator also changes statuses, reverses transactions and acts on held messages."""

    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role

    @property
    def can_change(self) -> bool:
        return self.role is Role.OPERATOR


class UserExists(ProcessorError):
    def __init__(self, username: str) -> None:
        super().__init__(f"user {username} exists already")
        self.username = username


def parse_username(value: str) -> str:
    name = value.strip().lower()
    if not USERNAME.fullmatch(name):
        raise InvalidValue(
            "username",
            f"{quoted(value)} is not a username (2 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter)",
        )
    return name


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise InvalidValue("role", f"{quoted(value)} is not a role (one of: {known})") from None


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue("password", f"too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidValue("password", f"too long: at most {MAX_PASSWORD_LENGTH} characters")
