"""The unit of work: one database transaction, rolled back unless the service commits it."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.orm import Session, sessionmaker

from processor.db.repositories import (
    AccountRepository,
    AuditRepository,
    CustomerRepository,
    HeldMessageRepository,
    LedgerRepository,
    StatsRepository,
    TokenRepository,
    TransactionRepository,
    UserRepository,
)


class UnitOfWork:
    customers: CustomerRepository
    accounts: AccountRepository
    transactions: TransactionRepository
    ledger: LedgerRepository
    audit: AuditRepository
    held: HeldMessageRepository
    stats: StatsRepository
    tokens: TokenRepository
    users: UserRepository

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def __enter__(self) -> Self:
        self.session = self.session_factory()
        self.customers = CustomerRepository(self.session)
        self.accounts = AccountRepository(self.session)
        self.transactions = TransactionRepository(self.session)
        self.ledger = LedgerRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.held = HeldMessageRepository(self.session)
        self.stats = StatsRepository(self.session)
        self.tokens = TokenRepository(self.session)
        self.users = UserRepository(self.session)
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
