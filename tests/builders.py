"""Builders with defaults, so each test states only what it is about."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import sqlalchemy

from processor.db.uow import UnitOfWork
from processor.domain.accounts import Account, Customer
from processor.domain.book import Policy
from processor.domain.outcomes import Outcome
from processor.domain.requests import InvalidPayment, PaymentRequest
from processor.services.accounts import change_status, get_account, open_account
from processor.services.customers import register_customer
from processor.services.payments import apply_payments
from tests.requests import deposit, unique

UowFactory = Callable[[], UnitOfWork]


def make_customer(make_uow: UowFactory, name: str = "Ada Lovelace") -> Customer:
    return register_customer(make_uow(), name, f"{unique('customer')}@example.com", actor="test")


def make_account(
    make_uow: UowFactory,
    type: str = "standard",
    balance: str = "0.00",
    status: str = "active",
    overdraft_limit: str | None = None,
    currency: str = "GBP",
    customer: Customer | None = None,
) -> Account:
    """An account funded by a real deposit, so the ledger stays consistent, then moved to `status`."""
    owner = customer or make_customer(make_uow)
    account = open_account(make_uow(), owner.number, type, currency, "test", ["GBP", "EUR", "USD"], overdraft_limit)
    if Decimal(balance) > 0:
        (outcome,) = pay(make_uow, deposit(account.number, balance, currency=currency))
        assert outcome.status == "applied", outcome
    if status != "active":
        change_status(make_uow(), account.number, status, reason="test setup", actor="test")
    return get_account(make_uow(), account.number)


def pay(
    make_uow: UowFactory, *requests: PaymentRequest | InvalidPayment, policy: Policy | None = None
) -> list[Outcome]:
    return apply_payments(make_uow(), list(requests), policy or Policy())


def balance(make_uow: UowFactory, number: str) -> Decimal:
    return get_account(make_uow(), number).balance


def tamper(make_uow: UowFactory, *statements: str, **params: object) -> None:
    """Commit raw SQL that the database's ledger guards refuse, as a damaged or hand-edited database would hold it.

    `session_replication_role = replica` skips every trigger, the guards of migration 0004 and foreign keys alike,
    for this one transaction only; it needs a superuser, which the tests connect as. Only tests that need a broken
    ledger (to prove `verify` finds it) or an impossible one (a balance at the column's limit) use it.
    """
    with make_uow() as uow:
        uow.session.execute(sqlalchemy.text("SET LOCAL session_replication_role = replica"))
        for statement in statements:
            uow.session.execute(sqlalchemy.text(statement), params)
        uow.commit()
