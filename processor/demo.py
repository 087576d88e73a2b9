"""`make demo`: a small bank on a fresh database, run through the services, with every rule on show.

Payments are applied by the same service the workers will call; the queue issue routes them through Celery.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import sqlalchemy
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.db import admin
from processor.domain.accounts import Account, make_account_number
from processor.domain.money import format_amount
from processor.domain.payments import parse_or_invalid
from processor.logs import configure_logging
from processor.services.accounts import change_status, get_account, open_account
from processor.services.customers import get_customer, register_customer
from processor.services.payments import apply_payments
from processor.services.verify import verify_ledger
from processor.terminal import console

ACTOR = "demo"
UNKNOWN = make_account_number(99999999)  # a well-formed number that no account has


@dataclass(frozen=True)
class Step:
    note: str
    fields: dict[str, object]


def reset_database(url: str) -> None:
    """Drop and re-create the demo database, then migrate it with Alembic."""
    name = sqlalchemy.engine.make_url(url).database or ""
    if not name.endswith("_demo"):
        sys.exit(f"error: refusing to reset {name}: the demo only resets a database whose name ends in _demo")
    admin.drop_database(url)
    admin.create_database(url)
    admin.upgrade(url)


def open_accounts() -> dict[str, Account]:
    settings = get_settings()
    alice = register_customer(unit_of_work(), "Alice Smith", "alice@example.com", ACTOR)
    bob = register_customer(unit_of_work(), "Bob Jones", "bob@example.com", ACTOR)

    def open_(customer: int, type: str, overdraft: str | None = None) -> Account:
        return open_account(unit_of_work(), customer, type, "GBP", ACTOR, settings.currencies, overdraft)

    return {
        "alice-current": open_(alice.number, "standard", "100.00"),
        "alice-savings": open_(alice.number, "savings"),
        "bob-reward": open_(bob.number, "reward"),
        "bob-dormant": open_(bob.number, "standard"),
        "bob-on-hold": open_(bob.number, "standard"),
        "bob-winding-down": open_(bob.number, "standard"),
        "bob-frozen": open_(bob.number, "standard"),
        "bob-closed": open_(bob.number, "standard"),
    }


def scenario(a: dict[str, str]) -> list[Step]:
    def pay(
        reference: str, type: str, amount: str, source: str = "", destination: str = "", currency: str = "GBP"
    ) -> dict[str, object]:
        return {
            "reference": reference,
            "type": type,
            "source": a.get(source),
            "destination": a.get(destination, destination or None),
            "amount": amount,
            "currency": currency,
        }

    steps = [
        Step("salary into a standard account", pay("demo-001", "deposit", "500.00", destination="alice-current")),
        Step("savings deposit", pay("demo-002", "deposit", "1000.00", destination="alice-savings")),
        Step("reward deposit earns 1 point per 10.00", pay("demo-003", "deposit", "250.00", destination="bob-reward")),
        Step(
            "transfer in (no points for transfers)",
            pay("demo-004", "transfer", "120.00", "alice-current", "bob-reward"),
        ),
        Step(
            "standard may use its overdraft of 100.00", pay("demo-005", "withdrawal", "450.00", source="alice-current")
        ),
        Step("...but not go past it", pay("demo-006", "withdrawal", "50.00", source="alice-current")),
    ]
    for n in range(6):
        steps.append(
            Step(f"savings outgoing payment {n + 1} of 6", pay(f"demo-01{n}", "withdrawal", "10.00", "alice-savings"))
        )
    steps += [
        Step("the 7th this month is refused", pay("demo-016", "withdrawal", "10.00", source="alice-savings")),
        Step("reward never goes below zero", pay("demo-020", "withdrawal", "1000.00", source="bob-reward")),
        Step("dormant: incoming accepted", pay("demo-030", "deposit", "20.00", destination="bob-dormant")),
        Step("dormant: outgoing blocked", pay("demo-031", "withdrawal", "10.00", source="bob-dormant")),
        Step("legal hold: incoming accepted", pay("demo-032", "transfer", "5.00", "alice-current", "bob-on-hold")),
        Step("legal hold: outgoing blocked", pay("demo-033", "transfer", "5.00", "bob-on-hold", "alice-current")),
        Step("winding down: incoming blocked", pay("demo-034", "deposit", "5.00", destination="bob-winding-down")),
        Step("winding down: outgoing allowed", pay("demo-035", "withdrawal", "5.00", source="bob-winding-down")),
        Step("frozen: incoming blocked", pay("demo-036", "deposit", "5.00", destination="bob-frozen")),
        Step("frozen: outgoing blocked", pay("demo-037", "withdrawal", "5.00", source="bob-frozen")),
        Step("closed: nothing moves", pay("demo-038", "deposit", "5.00", destination="bob-closed")),
        Step(
            "currency must match the account",
            pay("demo-040", "deposit", "5.00", destination="bob-reward", currency="EUR"),
        ),
        Step("no transfer to the same account", pay("demo-041", "transfer", "5.00", "bob-reward", "bob-reward")),
        Step("unknown account", pay("demo-042", "deposit", "5.00", destination=UNKNOWN)),
        Step("three decimals: invalid request", pay("demo-043", "deposit", "5.001", destination="bob-reward")),
        Step("redelivery of demo-001: no effect", pay("demo-001", "deposit", "500.00", destination="alice-current")),
        Step("demo-001 resent with another amount", pay("demo-001", "deposit", "900.00", destination="alice-current")),
    ]
    return steps


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level, default_level="ERROR")
    console.rule("ABC Bank demo")
    console.print(f"database: {sqlalchemy.engine.make_url(settings.database_url).render_as_string(hide_password=True)}")
    reset_database(settings.database_url)
    accounts = open_accounts()
    numbers = {name: account.number for name, account in accounts.items()}

    # Fund the accounts whose status rules are on show, then give each its status, as an operator would.
    funding = [
        parse_or_invalid(
            {
                "reference": f"fund-{name}",
                "type": "deposit",
                "destination": numbers[name],
                "amount": "50.00",
                "currency": "GBP",
            }
        )
        for name in ("bob-on-hold", "bob-winding-down", "bob-frozen")
    ]
    apply_payments(unit_of_work(), funding, settings.policy(), ACTOR)
    for name, status, reason in [
        ("bob-dormant", "dormant", "no activity for 24 months"),
        ("bob-on-hold", "outgoing_blocked", "court order 2026/118"),
        ("bob-winding-down", "incoming_blocked", "customer is moving banks"),
        ("bob-frozen", "frozen", "suspected fraud, case 7781"),
        ("bob-closed", "closed", "customer request"),
    ]:
        change_status(unit_of_work(), numbers[name], status, reason, ACTOR)

    steps = scenario(numbers)
    outcomes = apply_payments(unit_of_work(), [parse_or_invalid(s.fields) for s in steps], settings.policy(), ACTOR)

    names = {number: name for name, number in numbers.items()}
    table = Table("reference", "what it shows", "type", "amount", "from", "to", "outcome", title="Payments")
    for step, outcome in zip(steps, outcomes, strict=True):
        result = "[green]applied[/]" if outcome.status == "applied" else f"[red]rejected: {outcome.reason}[/]"
        if outcome.delivery == "duplicate":
            result = f"[yellow]duplicate of[/] {result}"
        elif outcome.delivery == "conflict":
            differing = ", ".join(outcome.conflicts[-1].fields)
            result = f"[yellow]conflict ({differing}); stands:[/] {result}"
        table.add_row(
            outcome.reference,
            step.note,
            str(step.fields["type"]),
            str(step.fields["amount"]),
            names.get(str(step.fields["source"]), "") if step.fields["source"] else "",
            names.get(str(step.fields["destination"]), str(step.fields["destination"] or "")),
            result,
        )
    console.print(table)

    table = Table("account", "name", "customer", "type", "status", "balance", "overdraft", "points", title="Accounts")
    for name, number in numbers.items():
        account = get_account(unit_of_work(), number)
        table.add_row(
            account.number,
            name,
            str(account.customer),
            account.type,
            account.status,
            format_amount(account.balance),
            format_amount(account.overdraft_limit),
            str(account.reward_points),
        )
    console.print(table)
    for customer_number in sorted({a.customer for a in accounts.values() if a.customer is not None}):
        customer, owned = get_customer(unit_of_work(), customer_number)
        console.print(f"customer {customer.number}: {customer.name} <{customer.email}>, {len(owned)} account(s)")

    violations = verify_ledger(unit_of_work())
    if violations:
        console.print(f"[red]verify: {len(violations)} violation(s)[/]")
        sys.exit(1)
    console.print("[green]verify: ok[/] (balances match entries, every transaction sums to zero, floors hold)")


if __name__ == "__main__":
    main()
