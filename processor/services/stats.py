"""Outcomes over a period, for a quick look at what the workers have been doing (`processor stats`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from processor.db.uow import UnitOfWork
from processor.domain.outcomes import OutcomeStatus
from processor.domain.stats import Stats


def outcome_stats(uow: UnitOfWork, start: datetime | timedelta, end: datetime | None = None) -> Stats:
    """Outcomes by status and reason recorded from `start` (a moment, or that long before now) to `end` (now)."""
    with uow:
        # The database's clock, not this host's: it is the one that stamped every outcome.
        now = uow.transactions.now()
        start = now - start if isinstance(start, timedelta) else start
        end = now if end is None else end
        by_status = dict.fromkeys((OutcomeStatus.APPLIED.value, OutcomeStatus.REJECTED.value), 0)
        by_reason: dict[str, int] = {}
        for status, reason, count in uow.stats.outcomes(start, end):
            by_status[status] = by_status.get(status, 0) + count
            if reason is not None:
                by_reason[reason] = by_reason.get(reason, 0) + count
        held_in_period, held, oldest = uow.stats.held(start, end)
        return Stats(
            start=start,
            end=end,
            by_status=by_status,
            rejected_by_reason=dict(sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))),
            conflicts=uow.stats.conflicts(start, end),
            held_in_period=held_in_period,
            held=held,
            oldest_held=oldest,
        )
