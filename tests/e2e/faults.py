"""Faults for end-to-end tests: a database that refuses connections, a row lock held from outside the worker, and a
look at the messages a worker took from Redis but never acknowledged."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import redis
import sqlalchemy
from celery import Celery
from sqlalchemy.engine import make_url

from processor.domain.outcomes import OutcomeStatus
from processor.messages import QUEUE
from processor.services.payments import get_outcomes
from tests.builders import UowFactory
from tests.conftest import SERVER_URL
from tests.e2e.conftest import Worker
from tests.e2e.traffic import Message

# Where kombu's Redis transport keeps a delivered message until it is acked: the message by delivery tag, and the
# time it was delivered, from which it is given back to the queue once the visibility timeout has passed.
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"


def wait_until(condition: Callable[[], bool], timeout: float, what: str, workers: Sequence[Worker] = ()) -> None:
    """Poll until the condition holds; fails naming what was awaited, with the end of the workers' logs."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(worker.output()[-5000:] for worker in workers)
            raise AssertionError(f"not after {timeout} s: {what}\n{logs}")
        time.sleep(0.05)


def recorded_count(make_uow: UowFactory, references: list[str]) -> int:
    """How many of the references have an outcome."""
    outcomes = get_outcomes(make_uow(), references).values()
    return sum(o.status is not OutcomeStatus.PENDING for o in outcomes)


def wait_until_recorded(make_uow: UowFactory, references: list[str], at_least: int, worker: Worker) -> None:
    wait_until(
        lambda: recorded_count(make_uow, references) >= at_least,
        30,
        f"{at_least} of {len(references)} references with an outcome",
        [worker],
    )


def send_with_ids(producer: Celery, messages: list[Message]) -> list[str]:
    """Send the messages; returns their task ids, which the worker's log lines name."""
    return [producer.send_task(task, kwargs=kwargs, queue=QUEUE).id for task, kwargs in messages]


@dataclass(frozen=True)
class Unacked:
    task_id: str
    task: str
    kwargs: dict[str, str]

    @property
    def accounts(self) -> set[str]:
        return {self.kwargs[key] for key in ("account", "source", "destination") if key in self.kwargs}


def unacked_messages(broker_url: str) -> list[Unacked]:
    """The messages delivered to a worker and not acked yet, as the broker holds them."""
    with redis.Redis.from_url(broker_url) as client:
        raw = client.hvals(UNACKED)
        indexed = client.zcard(UNACKED_INDEX)
    assert indexed == len(raw), f"{len(raw)} unacked messages but {indexed} in the index"
    messages = []
    for value in raw:
        message = json.loads(value)[0]
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        messages.append(Unacked(headers["id"], headers["task"], kwargs))
    return messages


def broker_is_idle(broker_url: str) -> bool:
    """Nothing queued and nothing delivered but unacked: every message sent has run to its end."""
    with redis.Redis.from_url(broker_url) as client:
        return bool(client.llen(QUEUE) == 0 and client.hlen(UNACKED) == 0)


def _server() -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


@contextmanager
def database_refusing_connections(database_url: str) -> Iterator[Callable[[], None]]:
    """The database refuses new connections and its sessions are ended, until the block exits.

    The PostgreSQL server stays up, for the other databases on it. Yields a function that ends the sessions again,
    in case one slipped in between the refusal and the first termination.
    """
    name = make_url(database_url).database
    server = _server()
    quoted = server.dialect.identifier_preparer.quote(name or "")

    def terminate() -> None:
        with server.connect() as connection:
            connection.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )

    try:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false"))
        terminate()
        yield terminate
    finally:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true"))
        server.dispose()


def database_outage(database_url: str, seconds: float) -> None:
    """Make the database unreachable for `seconds`, ending any session that reaches it meanwhile."""
    with database_refusing_connections(database_url) as terminate:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            terminate()


@contextmanager
def account_locked(database_url: str, account: str) -> Iterator[None]:
    """Hold the account's row lock, as a long transaction elsewhere would, until the block exits."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            connection.execute(
                sqlalchemy.text("SELECT id FROM accounts WHERE number = :number FOR UPDATE"), {"number": account}
            ).one()
            yield
            transaction.rollback()
    finally:
        engine.dispose()


def wait_for_lock_waiters(database_url: str, count: int, worker: Worker) -> None:
    wait_until(lambda: lock_waiters(database_url) == count, 10, f"{count} sessions waiting for a lock", [worker])


def lock_waiters(database_url: str) -> int:
    """How many sessions on the database wait for a lock."""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(
                    sqlalchemy.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            )
    finally:
        engine.dispose()
