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


@dataclass(frozen=True)
class Violation:
    check: str
    detail: dict[str, str]
