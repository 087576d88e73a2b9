"""The unit of work: one database transaction, rolled back unless the service commits it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from processor.db.repositories import (
    AccountRepository,
    AuditRepository,
    CustomerRepository,
    HeldMessageRepository,
    LedgerRepository,
    TransactionRepository,
)


class UnitOfWork:
    customers: CustomerRepository
    accounts: AccountRepository
    transactions: TransactionRepository
    ledger: LedgerRepository
    audit: AuditRepository
    held: HeldMessageRepository

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.timeouts = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}

    def __enter__(self) -> Self:
        self.session = self.session_factory()
        timeouts = {name: f"{int(seconds * 1000)}ms" for name, seconds in self.timeouts.items() if seconds is not None}
        if timeouts:
            # Local to this transaction: a pooled connection goes back with the server's defaults.
            calls = ", ".join(f"set_config('{name}', :{name}, true)" for name in timeouts)
            self.session.execute(text(f"SELECT {calls}"), timeouts)
        self.customers = CustomerRepository(self.session)
        self.accounts = AccountRepository(self.session)
        self.transactions = TransactionRepository(self.session)
        self.ledger = LedgerRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.held = HeldMessageRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()
