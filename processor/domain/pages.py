"""Pages of a listing, and the opaque cursors that say where the next one starts (keyset, never an offset)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from processor.domain.errors import InvalidValue

T = TypeVar("T")
MAX_PAGE = 10_000
KeyPart = int | str | datetime


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None  # the cursor of the following page; None on the last


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValue("limit", f"{limit} is not between 1 and {MAX_PAGE}")
    return limit


def make_cursor(listing: str, *key: KeyPart) -> str:
    """The cursor after a row: the listing's name and the row's sort key, as URL-safe text."""
    parts = [listing, *(k.isoformat() if isinstance(k, datetime) else k for k in key)]
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def read_cursor(listing: str, cursor: str, *types: type[KeyPart]) -> tuple[KeyPart, ...]:
    """The sort key a cursor of this listing carries; anything else is refused, naming the listing."""
    problem = InvalidValue("after", f"{cursor[:80]!r} is not a cursor of {listing} (pass the 'next' a page printed)")
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise problem from None
    if not isinstance(parts, list) or len(parts) != len(types) + 1 or parts[0] != listing:
        raise problem
    key: list[KeyPart] = []
    for kind, value in zip(types, parts[1:], strict=True):
        if kind is datetime and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise problem from None
            if moment.tzinfo is None:
                raise problem
            key.append(moment)
        elif (kind is int and isinstance(value, int) and not isinstance(value, bool)) or (
            kind is str and isinstance(value, str)
        ):
            key.append(value)
        else:
            raise problem
    return tuple(key)


def paged(rows: list[T], limit: int, cursor_of: CursorOf[T]) -> Page[T]:
    """A page from up to limit + 1 rows fetched: the extra one only says there is a next page."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, cursor_of(rows[-1]))
    return Page(rows, None)


class CursorOf(Generic[T]):
    """How a listing makes the cursor after one of its rows."""

    def __init__(self, listing: str, *key: str) -> None:
        self.listing = listing
        self.key = key

    def __call__(self, row: T) -> str:
        return make_cursor(self.listing, *(getattr(row, name) for name in self.key))
