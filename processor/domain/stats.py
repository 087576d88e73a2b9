"""What `processor stats` reports: the outcomes recorded over a period, and what is waiting for an operator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Stats:
    """Outcomes recorded in [start, end), and the held messages, the only payments the database knows of that have
    no outcome (one still on the queue is not in the database at all: Flower and the broker see those)."""

    start: datetime
    end: datetime
    by_status: Mapping[str, int] = field(default_factory=dict)
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    # Later attempts of a reference with another payment: each had no effect.
    conflicts: int = 0
    held_in_period: int = 0
    held: int = 0
    oldest_held: datetime | None = None

    @property
    def outcomes(self) -> int:
        return sum(self.by_status.values())
