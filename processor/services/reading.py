"""What operators read: customers, accounts, transactions, statements and the audit log, a page at a time.

Every listing is paged by a keyset cursor (the sort key of the last row, made opaque), never by an offset: a page
costs the same wherever it is, and rows that arrive between pages neither repeat nor push others out of view.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import cast

from processor.db.uow import UnitOfWork
from processor.domain.accounts import Account, AccountType, Customer, parse_account_number, parse_status
from processor.domain.errors import AccountNotFound, InvalidValue, TransactionNotFound, quoted
from processor.domain.ledger import StatementEntry
from processor.domain.money import ZERO
from processor.domain.outcomes import OutcomeStatus, Reason
from processor.domain.pages import CursorOf, Page, check_limit, paged, read_cursor
from processor.domain.records import AuditEntry, Statement, TransactionDetail, TransactionSummary
from processor.domain.requests import parse_reference

DEFAULT_PAGE = 50
_CUSTOMERS = CursorOf[Customer]("customers", "number")
_ACCOUNTS = CursorOf[Account]("accounts", "id")
_TRANSACTIONS = CursorOf[TransactionSummary]("transactions", "at", "id")
_AUDIT = CursorOf[AuditEntry]("audit", "id")
_STATEMENT = CursorOf[StatementEntry]("statement", "at", "id")


def _int_after(listing: str, after: str | None) -> int | None:
    return None if after is None else cast(int, read_cursor(listing, after, int)[0])


def _time_after(listing: str, after: str | None) -> tuple[datetime, int] | None:
    if after is None:
        return None
    at, row_id = read_cursor(listing, after, datetime, int)
    return cast(datetime, at), cast(int, row_id)


def _range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidValue("to", f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})")


def list_customers(
    uow: UnitOfWork, search: str | None = None, limit: int = DEFAULT_PAGE, after: str | None = None
) -> Page[Customer]:
    """Customers by number; with a search, those whose name or email contains it (or whose number it is)."""
    check_limit(limit)
    search = (search or "").strip() or None
    with uow:
        rows = uow.customers.page(limit + 1, search, _int_after(_CUSTOMERS.listing, after))
    return paged(rows, limit, _CUSTOMERS)


def list_accounts(
    uow: UnitOfWork,
    customer: int | None = None,
    type: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Page[Account]:
    """Accounts in the order they were opened, each filter optional; the bank's settlement accounts only when
    asked for by type."""
    check_limit(limit)
    account_type = None
    if type is not None:
        try:
            account_type = AccountType(type)
        except ValueError:
            known = ", ".join(t.value for t in AccountType)
            raise InvalidValue("type", f"{quoted(type)} is not an account type (one of: {known})") from None
    account_status = None if status is None else parse_status(status)
    with uow:
        rows = uow.accounts.page(
            limit + 1, customer, account_type, account_status, _int_after(_ACCOUNTS.listing, after)
        )
    return paged(rows, limit, _ACCOUNTS)


def list_transactions(
    uow: UnitOfWork,
    account: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
    reason: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Page[TransactionSummary]:
    """Transactions newest first, applied and rejected, by account, time range, status and reason."""
    check_limit(limit)
    _range(start, end)
    outcome = None
    if status is not None:
        if status not in (OutcomeStatus.APPLIED, OutcomeStatus.REJECTED):
            raise InvalidValue("status", f"{quoted(status)} is not a recorded status (applied or rejected)")
        outcome = OutcomeStatus(status)
    why = None
    if reason is not None:
        try:
            why = Reason(reason)
        except ValueError:
            known = ", ".join(r.value for r in Reason)
            raise InvalidValue("reason", f"{quoted(reason)} is not a reason code (one of: {known})") from None
    key = _time_after(_TRANSACTIONS.listing, after)
    with uow:
        account_id = None
        if account is not None:
            number = parse_account_number(account)
            found = uow.accounts.get_by_number(number)
            if found is None:
                raise AccountNotFound(number)
            account_id = found.id
        rows = uow.transactions.page(limit + 1, account_id, start, end, outcome, why, key)
    return paged(rows, limit, _TRANSACTIONS)


def show_transaction(uow: UnitOfWork, reference: str) -> TransactionDetail:
    """A reference's request, outcome, entries, conflicts, reversal links and held messages."""
    reference = parse_reference(reference)
    with uow:
        detail = uow.transactions.detail(reference)
    if detail is None:
        raise TransactionNotFound(reference)
    return detail


def list_audit(
    uow: UnitOfWork,
    account: str | None = None,
    transaction: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Page[AuditEntry]:
    """The audit log, newest first: every operator action, or those on one account or one transaction."""
    check_limit(limit)
    if account is not None and transaction is not None:
        raise InvalidValue("account", "name an account or a transaction, not both")
    entity: tuple[str | None, str | None] = (None, None)
    if account is not None:
        entity = ("account", parse_account_number(account))
    elif transaction is not None:
        entity = ("transaction", parse_reference(transaction))
    with uow:
        rows = uow.audit.page(limit + 1, *entity, after=_int_after(_AUDIT.listing, after))
    return paged(rows, limit, _AUDIT)


def account_statement(
    uow: UnitOfWork,
    number: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_PAGE,
    after: str | None = None,
) -> Statement:
    """A page of an account's entries in a range, oldest first, with the balances before and at the end of it."""
    check_limit(limit)
    _range(start, end)
    number = parse_account_number(number)
    key = _time_after(_STATEMENT.listing, after)
    with uow:
        # One snapshot for the entries and both balances, so that they agree while payments commit.
        uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        account = uow.accounts.get_by_number(number)
        if account is None:
            raise AccountNotFound(number)
        rows = uow.ledger.statement_page(account.id, limit + 1, start, end, key)
        opening = ZERO if start is None else uow.ledger.balance_before(account.id, start)
        closing = uow.ledger.balance_before(account.id, end)
    return Statement(account, start, end, opening, closing, paged(rows, limit, _STATEMENT))


@contextmanager
def export_statement(
    uow: UnitOfWork,
    number: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> Iterator[tuple[Account, Iterator[StatementEntry]]]:
    """An account's entries in a range, oldest first, streamed from the database for as long as the block runs."""
    _range(start, end)
    if limit is not None:
        check_limit(limit)
    number = parse_account_number(number)
    key = _time_after(_STATEMENT.listing, after)
    with uow:
        account = uow.accounts.get_by_number(number)
        if account is None:
            raise AccountNotFound(number)
        yield account, uow.ledger.stream_statement(account.id, start, end, key, limit)
