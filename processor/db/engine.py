"""Engines and session factories, one per database URL per process."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


@cache
def get_engine(url: str) -> Engine:
    # pool_pre_ping replaces a connection the server dropped (restart, failover) rather than failing on it.
    # Read Committed, whatever the server's default: each statement after a lock wait must see what the
    # lock holder committed (the reference check after the advisory lock depends on it).
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, isolation_level="READ COMMITTED")


@cache
def get_session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)
