"""The JSON shapes of the public contract (ARCHITECTURE.md section 9), built from domain values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.domain.accounts import Account, Customer
from processor.domain.held import HeldMessage
from processor.domain.ledger import StatementEntry, Violation
from processor.domain.money import format_amount
from processor.domain.payments import Outcome


def customer_json(customer: Customer, accounts: Sequence[Account] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"number": customer.number, "name": customer.name, "email": customer.email}
    if accounts is not None:
        data["accounts"] = [account_json(a) for a in accounts]
    return data


def account_json(account: Account) -> dict[str, Any]:
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


def outcome_json(outcome: Outcome) -> dict[str, Any]:
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
                "at": None if c.at is None else c.at.isoformat(),
            }
            for c in outcome.conflicts
        ],
    }


def statement_json(entries: Sequence[StatementEntry]) -> list[dict[str, Any]]:
    return [
        {
            "reference": e.reference,
            "amount": format_amount(e.amount),
            "balance_after": format_amount(e.balance_after),
            "at": e.at.isoformat(),
        }
        for e in entries
    ]


def verify_json(violations: Sequence[Violation]) -> dict[str, Any]:
    return {"ok": not violations, "violations": [{"check": v.check, **v.detail} for v in violations]}


def held_json(held: HeldMessage) -> dict[str, Any]:
    return {
        "id": held.id,
        "at": None if held.at is None else held.at.isoformat(),
        "reason": held.reason.value,
        "task": held.task,
        "task_id": held.task_id,
        "reference": held.reference,
        "message": dict(held.message),
        "error": held.error,
    }
