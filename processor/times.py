"""Times in and out of the operator's tools: one place that says how a moment is printed and how a date is read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from processor.domain.errors import InvalidValue

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def format_time(moment: datetime) -> str:
    """RFC 3339 with its offset, in UTC (the one switch for a configured time zone)."""
    return moment.astimezone(UTC).isoformat()


def parse_moment(value: str, field: str, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD, a whole day in UTC) or an RFC 3339 time; as an end bound, a date means the end of it.

    A range runs from its start, included, to its end, excluded: `--from 2026-12-01 --to 2026-12-01` is that day.
    A time without an offset is read as UTC.
    """
    text = value.strip()
    try:
        if _DATE.fullmatch(text):
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(field, f"{value[:40]!r} is not a date (2026-12-01) or an RFC 3339 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
