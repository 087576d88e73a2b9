"""What the ledger reports: statement lines and broken invariants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class StatementEntry:
    reference: str
    amount: Decimal
    balance_after: Decimal
    at: datetime
    type: str | None = None
    # The other customer account of a transfer; None for a deposit or withdrawal (the bank's settlement side).
    counterparty: str | None = None
    description: str | None = None
    reverses: str | None = None
    id: int = 0  # the entry's id: with `at`, where the next page starts


@dataclass(frozen=True)
class Violation:
    check: str
    detail: dict[str, str]
