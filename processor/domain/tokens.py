"""API tokens: the bearer secrets upstream systems present to the HTTP API, and how they are kept."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from processor.domain.errors import InvalidValue, NotFound

# A prefix that says what a leaked string is (secret scanners and people both match on it); 32 random bytes after.
TOKEN_PREFIX = "abc_"
NAME_MAX_LENGTH = 64


@dataclass(frozen=True)
class ApiToken:
    """A token as stored: never the secret itself, only its digest."""

    id: int
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenNotFound(NotFound):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"no API token has the id {token_id}")


def new_secret() -> str:
    """A fresh bearer secret: 256 bits from the operating system's CSPRNG."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored for a secret. A plain SHA-256 is enough here, unlike for a password: the secret is 256 random
    bits, so there is no dictionary to try and a slow hash would only slow every request down."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_token_name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise InvalidValue("name", f"must be 1 to {NAME_MAX_LENGTH} printable characters, naming who uses the token")
    return name
