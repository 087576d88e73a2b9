"""Wiring for entry points: a unit of work on the configured database."""

from __future__ import annotations

from processor.config import get_settings
from processor.db.engine import get_session_factory
from processor.db.uow import UnitOfWork


def unit_of_work(database_url: str | None = None) -> UnitOfWork:
    return UnitOfWork(get_session_factory(database_url or get_settings().database_url))
