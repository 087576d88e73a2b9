"""Times in the operator's tools: the one place that says how a moment is printed."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from processor.config import get_settings


def format_time(moment: datetime, timespec: Literal["seconds", "milliseconds", "microseconds"] = "microseconds") -> str:
    """A moment as RFC 3339 with its offset, in PROCESSOR_TIMEZONE: the one way every output shows a time.

    JSON keeps the microseconds the database has, tables show whole seconds, logs milliseconds.
    """
    if moment.tzinfo is None:
        # A naive moment's zone is unknown: shown as if local, it would be wrong by the offset, silently.
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(get_settings().zone).isoformat(timespec=timespec)
