"""What /healthz asks: can the database be reached."""

from __future__ import annotations

import sqlalchemy
import sqlalchemy.exc

from processor.db.uow import UnitOfWork


def database_reachable(uow: UnitOfWork) -> bool:
    """Whether a query reaches the database."""
    try:
        with uow:
            uow.session.execute(sqlalchemy.text("SELECT 1"))
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError):
        return False
    return True
