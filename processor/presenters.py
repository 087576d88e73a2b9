"""The JSON shapes of the public contract (docs/architecture.md, "Output shapes"), built from domain values.

Each shape is a TypedDict, so mypy checks every presenter against the contract's keys and value types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import NotRequired, TypedDict, TypeVar

from processor.domain.accounts import Account, Customer
from processor.domain.held import HeldMessage
from processor.domain.ledger import StatementEntry, Violation
from processor.domain.money import format_amount
from processor.domain.outcomes import Conflict, Outcome
from processor.domain.pages import Page
from processor.domain.records import AuditEntry, Statement, TransactionDetail, TransactionSummary
from processor.domain.stats import Stats
from processor.domain.tokens import ApiToken
from processor.times import format_time

T = TypeVar("T")
J = TypeVar("J")


class AccountJson(TypedDict):
    number: str
    customer: int | None
    type: str
    status: str
    currency: str
    balance: str
    overdraft_limit: str
    reward_points: int


class CustomerJson(TypedDict):
    number: int
    name: str
    email: str
    accounts: NotRequired[list[AccountJson]]


class ConflictJson(TypedDict):
    fields: list[str]
    payload: dict[str, object]
    at: str | None


class OutcomeJson(TypedDict):
    reference: str
    status: str
    reason: str | None
    type: str | None
    amount: str | None
    currency: str | None
    source: str | None
    destination: str | None
    errors: list[str]
    delivery: str
    conflicts: list[ConflictJson]


class StatementEntryJson(TypedDict):
    reference: str
    amount: str
    balance_after: str
    at: str
    type: str | None
    counterparty: str | None
    description: str | None
    reverses: str | None


class VerifyJson(TypedDict):
    ok: bool
    violations: list[dict[str, str]]


class HeldJson(TypedDict):
    id: int | None
    at: str | None
    reason: str
    task: str
    task_id: str | None
    reference: str | None
    message: dict[str, object]
    error: str
    outcome: str | None
    resent_at: str | None
    resends: int
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None


class StatsJson(TypedDict):
    start: str
    end: str
    outcomes: int
    by_status: dict[str, int]
    rejected_by_reason: dict[str, int]
    conflicts: int
    held_in_period: int
    held: int
    oldest_held: str | None


def customer_json(customer: Customer, accounts: Sequence[Account] | None = None) -> CustomerJson:
    data: CustomerJson = {"number": customer.number, "name": customer.name, "email": customer.email}
    if accounts is not None:
        data["accounts"] = [account_json(a) for a in accounts]
    return data


def account_json(account: Account) -> AccountJson:
    return {
        "number": account.number,
        "customer": account.customer,
        "type": account.type.value,
        "status": account.status.value,
        "currency": account.currency,
        "balance": format_amount(account.balance),
        "overdraft_limit": format_amount(account.overdraft_limit),
        "reward_points": account.reward_points,
    }


def outcome_json(outcome: Outcome) -> OutcomeJson:
    return {
        "reference": outcome.reference,
        "status": outcome.status.value,
        "reason": None if outcome.reason is None else outcome.reason.value,
        "type": outcome.type,
        "amount": outcome.amount,
        "currency": outcome.currency,
        "source": outcome.source,
        "destination": outcome.destination,
        "errors": list(outcome.errors),
        "delivery": outcome.delivery.value,
        "conflicts": [_conflict_json(c) for c in outcome.conflicts],
    }


def statement_entry_json(e: StatementEntry) -> StatementEntryJson:
    return {
        "reference": e.reference,
        "amount": format_amount(e.amount),
        "balance_after": format_amount(e.balance_after),
        "at": format_time(e.at),
        "type": e.type,
        "counterparty": e.counterparty,
        "description": e.description,
        "reverses": e.reverses,
    }


def verify_json(violations: Sequence[Violation]) -> VerifyJson:
    return {"ok": not violations, "violations": [{"check": v.check, **v.detail} for v in violations]}


def held_json(held: HeldMessage) -> HeldJson:
    return {
        "id": held.id,
        "at": _time(held.at),
        "reason": held.reason.value,
        "task": held.task,
        "task_id": held.task_id,
        "reference": held.reference,
        "message": dict(held.message),
        "error": held.error,
        "outcome": held.outcome,
        "resent_at": _time(held.resent_at),
        "resends": held.resends,
        "resolved_at": _time(held.resolved_at),
        "resolved_by": held.resolved_by,
        "resolution": held.resolution,
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else format_amount(amount)


class PageJson(TypedDict):
    items: list[object]
    next: str | None


def page_json(page: Page[T], item: Callable[[T], J]) -> PageJson:
    """A page of any listing: its items in their own shape, and the cursor of the next page (null on the last)."""
    return {"items": [item(i) for i in page.items], "next": page.next}


class TransactionJson(TypedDict):
    reference: str
    status: str
    reason: str | None
    type: str | None
    amount: str | None
    currency: str | None
    source: str | None
    destination: str | None
    description: str | None
    at: str | None  # null only in `transaction show` of a reference that has no outcome yet
    reverses: str | None


def transaction_json(t: TransactionSummary) -> TransactionJson:
    return {
        "reference": t.reference,
        "status": t.status.value,
        "reason": None if t.reason is None else t.reason.value,
        "type": t.type,
        "amount": _money(t.amount),
        "currency": t.currency,
        "source": t.source,
        "destination": t.destination,
        "description": t.description,
        "at": format_time(t.at),
        "reverses": t.reverses,
    }


class EntryJson(TypedDict):
    account: str
    amount: str
    balance_after: str
    at: str


def _conflict_json(c: Conflict) -> ConflictJson:
    return {"fields": list(c.fields), "payload": dict(c.payload), "at": _time(c.at)}


class TransactionDetailJson(TransactionJson):
    request: dict[str, object]
    errors: list[str]
    entries: list[EntryJson]
    conflicts: list[ConflictJson]
    reversed_by: str | None
    rejected_reversals: list[str]
    held: list[int]


def transaction_detail_json(d: TransactionDetail) -> TransactionDetailJson:
    if d.transaction is not None:
        summary = transaction_json(d.transaction)
    else:
        summary = {
            "reference": d.reference,
            "status": "pending",
            "reason": None,
            "type": None,
            "amount": None,
            "currency": None,
            "source": None,
            "destination": None,
            "description": None,
            "at": None,
            "reverses": None,
        }
    return {
        **summary,
        "request": d.request,
        "errors": list(d.errors),
        "entries": [
            {
                "account": e.account,
                "amount": format_amount(e.amount),
                "balance_after": format_amount(e.balance_after),
                "at": format_time(e.at),
            }
            for e in d.entries
        ],
        "conflicts": [_conflict_json(c) for c in d.conflicts],
        "reversed_by": d.reversed_by,
        "rejected_reversals": list(d.rejected_reversals),
        "held": list(d.held),
    }


class AuditJson(TypedDict):
    id: int
    at: str
    actor: str
    action: str
    entity_type: str
    entity: str
    details: dict[str, object]


def audit_json(a: AuditEntry) -> AuditJson:
    return {
        "id": a.id,
        "at": format_time(a.at),
        "actor": a.actor,
        "action": a.action,
        "entity_type": a.entity_type,
        "entity": a.entity,
        "details": a.details,
    }


# "from" is a keyword: the functional form names it.
StatementJson = TypedDict(
    "StatementJson",
    {
        "account": str,
        "currency": str,
        "from": str | None,
        "to": str | None,
        "opening_balance": str,
        "closing_balance": str,
        "items": list[StatementEntryJson],
        "next": str | None,
    },
)


def statement_json(s: Statement) -> StatementJson:
    """A statement page: the range, the balance before it and at its end, and the entries of this page."""
    return {
        "account": s.account.number,
        "currency": s.account.currency,
        "from": _time(s.start),
        "to": _time(s.end),
        "opening_balance": format_amount(s.opening_balance),
        "closing_balance": format_amount(s.closing_balance),
        "items": [statement_entry_json(e) for e in s.entries.items],
        "next": s.entries.next,
    }


def stats_json(stats: Stats) -> StatsJson:
    return {
        "start": format_time(stats.start),
        "end": format_time(stats.end),
        "outcomes": stats.outcomes,
        "by_status": dict(stats.by_status),
        "rejected_by_reason": dict(stats.rejected_by_reason),
        "conflicts": stats.conflicts,
        "held_in_period": stats.held_in_period,
        "held": stats.held,
        "oldest_held": None if stats.oldest_held is None else format_time(stats.oldest_held),
    }


class ApiTokenJson(TypedDict):
    id: int
    name: str
    created_at: str
    created_by: str
    revoked_at: str | None
    active: bool


def api_token_json(token: ApiToken) -> ApiTokenJson:
    """A token as listed: never its secret, which only `api-token create` shows, once."""
    return {
        "id": token.id,
        "name": token.name,
        "created_at": format_time(token.created_at),
        "created_by": token.created_by,
        "revoked_at": None if token.revoked_at is None else format_time(token.revoked_at),
        "active": token.active,
    }


STATEMENT_CSV_COLUMNS = (
    "at",
    "reference",
    "type",
    "counterparty",
    "description",
    "amount",
    "balance_after",
    "reverses",
)
# A spreadsheet runs a cell that starts with one of these as a formula; a sender wrote the description.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def statement_csv_row(e: StatementEntry) -> list[str]:
    """A statement entry as a CSV row (the CLI's --format csv, the console's download)."""
    return [
        format_time(e.at),
        e.reference,
        e.type or "",
        e.counterparty or "",
        _csv_text(e.description),
        format_amount(e.amount),
        format_amount(e.balance_after),
        e.reverses or "",
    ]
