"""The JSON shapes of the public contract (docs/architecture.md, "Output shapes"), built from domain values.

Each shape is a TypedDict, so mypy checks every presenter against the contract's keys and value types.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NotRequired, TypedDict

from processor.config import get_settings
from processor.domain.accounts import Account, Customer
from processor.domain.held import HeldMessage
from processor.domain.ledger import StatementEntry, Violation
from processor.domain.money import format_amount
from processor.domain.outcomes import Outcome
from processor.domain.stats import Stats


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


def format_time(moment: datetime, timespec: Literal["seconds", "milliseconds", "microseconds"] = "microseconds") -> str:
    """A moment as RFC 3339 with its offset, in PROCESSOR_TIMEZONE: the one way every output shows a time.

    JSON keeps the microseconds the database has, tables show whole seconds, logs milliseconds.
    """
    if moment.tzinfo is None:
        # A naive moment's zone is unknown: shown as if local, it would be wrong by the offset, silently.
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(get_settings().zone).isoformat(timespec=timespec)


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
        "conflicts": [
            {
                "fields": list(c.fields),
                "payload": dict(c.payload),
                "at": None if c.at is None else format_time(c.at),
            }
            for c in outcome.conflicts
        ],
    }


def statement_json(entries: Sequence[StatementEntry]) -> list[StatementEntryJson]:
    return [
        {
            "reference": e.reference,
            "amount": format_amount(e.amount),
            "balance_after": format_amount(e.balance_after),
            "at": format_time(e.at),
        }
        for e in entries
    ]


def verify_json(violations: Sequence[Violation]) -> VerifyJson:
    return {"ok": not violations, "violations": [{"check": v.check, **v.detail} for v in violations]}


def held_json(held: HeldMessage) -> HeldJson:
    return {
        "id": held.id,
        "at": None if held.at is None else format_time(held.at),
        "reason": held.reason.value,
        "task": held.task,
        "task_id": held.task_id,
        "reference": held.reference,
        "message": dict(held.message),
        "error": held.error,
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
