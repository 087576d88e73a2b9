from __future__ import annotations

from processor.db.uow import UnitOfWork
from processor.domain.ledger import Violation


def verify_ledger(uow: UnitOfWork) -> list[Violation]:
    """Check the ledger's invariants; an empty list means the books balance."""
    with uow:
        # One snapshot for every check, so a payment committing mid-run cannot look like a violation.
        uow.session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return uow.ledger.find_violations()
