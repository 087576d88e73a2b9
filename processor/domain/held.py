"""Messages held for operators: ones no outcome can be recorded for, kept so that nothing vanishes silently."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from processor.domain.requests import clip

MAX_FIELDS = 20


class HeldReason(StrEnum):
    UNREADABLE = "unreadable"  # no reference could be read, so no outcome can be recorded against one
    RETRIES_SPENT = "retries_spent"  # transient failures outlasted the retries; a resend can still apply it
    FAILED = "failed"  # an unexpected error: a bug to look at before resending


@dataclass(frozen=True)
class HeldMessage:
    reason: HeldReason
    task: str
    task_id: str | None
    reference: str | None
    message: Mapping[str, object]
    error: str
    id: int | None = None
    at: datetime | None = None
    # What operators did about it.
    resent_at: datetime | None = None
    resends: int = 0
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    # The outcome now recorded for its reference, if any (a resend may have settled it).
    outcome: str | None = None

    @classmethod
    def of(
        cls,
        reason: HeldReason,
        task: str,
        task_id: str | None,
        args: Sequence[object],
        kwargs: Mapping[str, object],
        error: str,
    ) -> HeldMessage:
        """A held message with what arrived clipped to a readable excerpt, however large or odd it was."""
        reference = kwargs.get("reference")
        fields = list(kwargs.items())
        message: dict[str, object] = {str(clip(str(k)[:64])): clip(v) for k, v in fields[:MAX_FIELDS]}
        if len(fields) > MAX_FIELDS:
            message["…"] = f"{len(fields) - MAX_FIELDS} more fields"
        if args:
            message["args"] = clip(list(args))
        return cls(
            reason=reason,
            task=str(clip(task))[:200],
            task_id=None if task_id is None else str(clip(task_id))[:200],
            reference=str(clip(reference))[:64] if isinstance(reference, str) and len(reference) <= 64 else None,
            message=message,
            error=str(clip(error)),
        )
