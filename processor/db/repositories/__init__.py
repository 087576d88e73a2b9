"""Repositories: one per aggregate, 2.0-style statements, never a commit (the unit of work owns that)."""

from processor.db.repositories.accounts import AccountRepository
from processor.db.repositories.audit import AuditRepository
from processor.db.repositories.customers import CustomerRepository
from processor.db.repositories.held import HeldMessageRepository
from processor.db.repositories.ledger import LedgerRepository
from processor.db.repositories.stats import StatsRepository
from processor.db.repositories.tokens import TokenRepository
from processor.db.repositories.transactions import NewTransaction, TransactionRepository
from processor.db.repositories.users import UserRepository

__all__ = [
    "AccountRepository",
    "AuditRepository",
    "CustomerRepository",
    "HeldMessageRepository",
    "LedgerRepository",
    "NewTransaction",
    "StatsRepository",
    "TokenRepository",
    "TransactionRepository",
    "UserRepository",
]
