"""What operators read back: transactions as listed and shown, audit entries, and what a statement covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from processor.domain.accounts import Account
from processor.domain.ledger import StatementEntry
from processor.domain.outcomes import Conflict, OutcomeStatus, Reason
from processor.domain.pages import Page


@dataclass(frozen=True)
class TransactionSummary:
    id: int
    reference: str
    status: OutcomeStatus
    reason: Reason | None
    type: str | None
    amount: Decimal | None
    currency: str | None
    source: str | None
    destination: str | None
    description: str | None
    at: datetime
    reverses: str | None = None  # the reference this transaction reverses


@dataclass(frozen=True)
class EntryLine:
    account: str
    amount: Decimal
    balance_after: Decimal
    at: datetime


@dataclass(frozen=True)
class TransactionDetail:
    """Everything recorded under a reference; `transaction` is None while it has no outcome (held, say)."""

    reference: str
    transaction: TransactionSummary | None
    request: dict[str, object]
    errors: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    entries: tuple[EntryLine, ...] = ()
    reversed_by: str | None = None  # the applied reversal of this transaction
    rejected_reversals: tuple[str, ...] = ()  # reversals of it that the rules refused
    held: tuple[int, ...] = ()  # ids of messages held under this reference


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity: str
    details: dict[str, object]


@dataclass(frozen=True)
class Statement:
    """A page of an account's entries in a range, with the balance before the range and at its end."""

    account: Account
    start: datetime | None
    end: datetime | None
    opening_balance: Decimal
    closing_balance: Decimal
    entries: Page[StatementEntry]
