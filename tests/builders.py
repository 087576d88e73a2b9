"""Builders with defaults, so each test states only what it is about."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal

from processor.db.uow import UnitOfWork
from processor.domain.accounts import Account, Customer
from processor.domain.payments import Outcome, PaymentRequest, PaymentType, Policy
from processor.services.accounts import change_status, get_account, open_account
from processor.services.customers import register_customer
from processor.services.payments import apply_payments

UowFactory = Callable[[], UnitOfWork]
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


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


def deposit(destination: str, amount: str, currency: str = "GBP", reference: str | None = None) -> PaymentRequest:
    return PaymentRequest(
        reference or unique("dep"), PaymentType.DEPOSIT, Decimal(amount), currency, destination=destination
    )


def withdrawal(source: str, amount: str, currency: str = "GBP", reference: str | None = None) -> PaymentRequest:
    return PaymentRequest(reference or unique("wd"), PaymentType.WITHDRAWAL, Decimal(amount), currency, source=source)


def transfer(
    source: str, destination: str, amount: str, currency: str = "GBP", reference: str | None = None
) -> PaymentRequest:
    return PaymentRequest(
        reference or unique("tr"),
        PaymentType.TRANSFER,
        Decimal(amount),
        currency,
        source=source,
        destination=destination,
    )


def pay(make_uow: UowFactory, *requests: PaymentRequest, policy: Policy | None = None) -> list[Outcome]:
    return apply_payments(make_uow(), list(requests), policy or Policy())


def balance(make_uow: UowFactory, number: str) -> Decimal:
    return get_account(make_uow(), number).balance
