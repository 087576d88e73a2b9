from __future__ import annotations

from collections.abc import Sequence

from processor.db.uow import UnitOfWork
from processor.domain.accounts import (
    Account,
    AccountType,
    parse_account_number,
    parse_account_type,
    parse_status,
)
from processor.domain.errors import AccountNotFound, CustomerNotFound, InvalidValue, UnsupportedCurrency
from processor.domain.money import ZERO, format_amount, parse_currency, parse_limit
from processor.logs import log_event


def open_account(
    uow: UnitOfWork,
    customer: int,
    type: str,
    currency: str,
    actor: str,
    supported_currencies: Sequence[str],
    overdraft_limit: str | None = None,
) -> Account:
    """Open an account for a customer; an overdraft limit is for standard accounts only."""
    account_type = parse_account_type(type)
    currency = parse_currency(currency)
    if currency not in supported_currencies:
        raise UnsupportedCurrency(currency, supported_currencies)
    limit = ZERO if overdraft_limit is None else parse_limit(overdraft_limit, "overdraft_limit")
    if limit and account_type is not AccountType.STANDARD:
        raise InvalidValue("overdraft_limit", f"a {account_type} account cannot go below zero; only standard can")
    with uow:
        customer_id = uow.customers.get_id_by_number(customer)
        if customer_id is None:
            raise CustomerNotFound(customer)
        uow.accounts.ensure_settlement(currency)
        number = uow.accounts.add(customer_id, account_type, currency, limit)
        uow.audit.add(
            actor,
            "account.opened",
            "account",
            number,
            customer=customer,
            type=account_type.value,
            currency=currency,
            overdraft_limit=format_amount(limit),
        )
        account = uow.accounts.get_by_number(number)
        uow.commit()
    assert account is not None
    log_event("account.opened", account=number, customer=customer, type=account_type.value, actor=actor)
    return account


def get_account(uow: UnitOfWork, number: str) -> Account:
    """An account with its balance, by its number."""
    number = parse_account_number(number)
    with uow:
        account = uow.accounts.get_by_number(number)
    if account is None:
        raise AccountNotFound(number)
    return account


def change_status(uow: UnitOfWork, number: str, status: str, reason: str, actor: str) -> Account:
    """Move an account to another status, recording who, when, from, to and why in the audit log."""
    number = parse_account_number(number)
    target = parse_status(status)
    reason = reason.strip()
    if not reason:
        raise InvalidValue("reason", "say why the status changes; it goes into the audit log")
    with uow:
        # Locked like a payment locks it, so a payment in flight finishes under the old status or sees the new.
        locked = uow.accounts.get_for_update([number])
        if not locked:
            raise AccountNotFound(number)
        account = locked[0]
        account.check_status_change(target)
        previous = account.status
        uow.accounts.set_status(account.id, target)
        uow.audit.add(
            actor,
            "account.status_changed",
            "account",
            number,
            reason=reason,
            **{"from": previous.value, "to": target.value},
        )
        uow.commit()
    account.status = target
    log_event("account.status_changed", account=number, previous=previous, status=target, actor=actor)
    return account
