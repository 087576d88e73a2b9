"""Payment requests with defaults, the one set of request builders for every test layer (no database needed)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from processor.domain.accounts import Account, make_account_number
from processor.domain.requests import PaymentRequest, PaymentType

_references = itertools.count(1)

AccountRef = Account | str


def unique(prefix: str) -> str:
    """A reference no other test of this run uses."""
    return f"{prefix}-{next(_references)}"


def _number(account: AccountRef | None) -> str | None:
    return account.number if isinstance(account, Account) else account


def request(
    type: PaymentType,
    amount: str,
    currency: str = "GBP",
    source: AccountRef | None = None,
    destination: AccountRef | None = None,
    reference: str | None = None,
    description: str | None = None,
) -> PaymentRequest:
    return PaymentRequest(
        reference=reference or unique(type.value[:3]),
        type=type,
        amount=Decimal(amount),
        currency=currency,
        source=_number(source),
        destination=_number(destination),
        description=description,
    )


def deposit(
    destination: AccountRef,
    amount: str = "10.00",
    currency: str = "GBP",
    reference: str | None = None,
    description: str | None = None,
) -> PaymentRequest:
    return request(PaymentType.DEPOSIT, amount, currency, None, destination, reference, description)


def withdrawal(
    source: AccountRef,
    amount: str = "10.00",
    currency: str = "GBP",
    reference: str | None = None,
    description: str | None = None,
) -> PaymentRequest:
    return request(PaymentType.WITHDRAWAL, amount, currency, source, None, reference, description)


def transfer(
    source: AccountRef,
    destination: AccountRef,
    amount: str = "10.00",
    currency: str = "GBP",
    reference: str | None = None,
    description: str | None = None,
) -> PaymentRequest:
    return request(PaymentType.TRANSFER, amount, currency, source, destination, reference, description)


A = make_account_number(20000001)
B = make_account_number(20000002)


def row(**overrides: object) -> dict[str, object]:
    """The fields of a valid transfer in the domain's shape (a payment file row), with some replaced."""
    return {
        "reference": "ref-1",
        "type": "transfer",
        "source": A,
        "destination": B,
        "amount": "125.50",
        "currency": "GBP",
        "description": "rent",
        **overrides,
    }
