"""Engines and session factories, one per database URL per process."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


@cache
def get_engine(url: str, lock_timeout: float | None = None, statement_timeout: float | None = None) -> Engine:
    # pool_pre_ping replaces a connection the server dropped (restart, failover) rather than failing on it.
    # Read Committed, whatever the server's default: each statement after a lock wait must see what the
    # lock holder committed (the outcomes read after the account locks depend on it).
    # A server that stops answering must fail a connection in seconds, not hang it: a worker process waiting on
    # a dead socket would hold its messages, and the main process's time limits, with it.
    # Timeouts are set once per connection, as server options, rather than per transaction: that is a round
    # trip fewer for every batch a worker applies.
    timeouts = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    options = " ".join(f"-c {name}={int(seconds * 1000)}" for name, seconds in timeouts.items() if seconds is not None)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        isolation_level="READ COMMITTED",
        connect_args={**CONNECT_ARGS, "options": options} if options else CONNECT_ARGS,
    )


# libpq: give up connecting after 5 s; notice a silent peer after about 30 s of keepalives, or 30 s unacknowledged.
CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 4,
    "tcp_user_timeout": 30_000,
}


@cache
def get_session_factory(
    url: str, lock_timeout: float | None = None, statement_timeout: float | None = None
) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url, lock_timeout, statement_timeout), expire_on_commit=False)
