"""Wiring for entry points: a unit of work on the configured database."""

from __future__ import annotations

from sqlalchemy import Engine

from processor.config import get_settings
from processor.db.engine import get_engine, get_session_factory
from processor.db.uow import UnitOfWork


def unit_of_work(database_url: str | None = None) -> UnitOfWork:
    return UnitOfWork(get_session_factory(database_url or get_settings().database_url))


def worker_unit_of_work() -> UnitOfWork:
    """A unit of work whose lock waits and statements are bounded, so a stuck lock becomes a retry, not a hang."""
    settings = get_settings()
    return UnitOfWork(get_session_factory(settings.database_url, settings.lock_timeout, settings.statement_timeout))


def worker_engines() -> list[Engine]:
    """The engines a worker process uses, to be disposed of in a process forked from one that used them."""
    settings = get_settings()
    return [
        get_engine(settings.database_url),
        get_engine(settings.database_url, settings.lock_timeout, settings.statement_timeout),
    ]
