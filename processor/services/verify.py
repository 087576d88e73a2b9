from __future__ import annotations

from processor.db.uow import UnitOfWork
from processor.domain.ledger import Violation


def verify_ledger(uow: UnitOfWork) -> list[Violation]:
    """Check the ledger's invariants; an empty list means the books balance."""
    # Each check is one statement, so each sees one consistent snapshot even while payments commit.
    with uow:
        return uow.ledger.find_violations()
