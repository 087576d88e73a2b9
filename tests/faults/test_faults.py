"""The bank workload through real workers while one fault strikes at random moments; after each, every reference
has exactly one outcome or is held (after the sender's resend), nothing is doubled, money is conserved, the
reused references are recorded as conflicts, and `processor verify` is green.

The seed is printed in the header; FAULTS_SEED=<seed> replays the same workload and the same moments.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy

from processor.messages import QUEUE
from tests.builders import UowFactory
from tests.e2e.conftest import Worker
from tests.e2e.faults import UNACKED
from tests.e2e.traffic import Message, Traffic
from tests.faults.bank import TABLE, Bank, Run, Tally, bank_workload, open_bank, random_moments
from tests.faults.conftest import SEED, SEED_VARIABLE, WORKER_APPLICATION, Workers
from tests.faults.servers import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.faults

PAYMENTS = 300
# The workload arrives over this many seconds, and the faults strike within it.
SPREAD = 8.0


@pytest.fixture
def bank(make_uow: UowFactory, database_url: str) -> Bank:
    return open_bank(make_uow, database_url)


Begin = Callable[..., Run]


@pytest.fixture
def begin(
    make_uow: UowFactory, database_url: str, broker_url: str, bank: Bank, seed: int, workers: Workers
) -> Iterator[Begin]:
    """Start a fault's run; its row goes into the table whatever happens, then its problems fail the test."""
    runs: list[Run] = []

    def start(fault: str, payments: int = PAYMENTS, description: str | None = None) -> Run:
        traffic = bank_workload(bank, payments, re.sub(r"[^a-z0-9]+", "-", fault.lower()).strip("-"), seed)
        if description is not None:
            traffic = described(traffic, description.strip())
        run = Run(make_uow, database_url, broker_url, bank, traffic, traffic.all(seed), Tally(fault))
        runs.append(run)
        return run

    yield start
    for run in runs:
        TABLE.append(run.tally)
        if run.sender is not None:
            run.sender.close()


def described(traffic: Traffic, description: str) -> Traffic:
    """The same traffic, every message with a description (which makes no resend a conflict)."""

    def each(messages: list[Message]) -> list[Message]:
        return [(task, {**kwargs, "description": description}) for task, kwargs in messages]

    return Traffic(each(traffic.originals), each(traffic.duplicates), each(traffic.conflicts))


def finish(run: Run, workers: Workers) -> None:
    if run.problems:
        replay = f"replay with {SEED_VARIABLE}={SEED} make faults"
        pytest.fail(run.verdict(replay, workers.output), pytrace=False)


def wait_for_busy_children(worker: Worker, database_url: str, timeout: float = 1.0) -> list[int]:
    """The worker's pool processes that are inside a database transaction now, waiting up to `timeout` for one."""
    ports = {port for port, _ in wait_for_busy_sessions(database_url, timeout)}
    return [pid for pid in worker.children() if ports & local_ports(pid)]


def wait_for_busy_sessions(database_url: str, timeout: float = 1.0) -> list[tuple[int, str]]:
    """The worker sessions inside a transaction now, waiting up to `timeout` for one."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [(port, state) for port, state in worker_sessions(database_url) if state not in ("idle", "")]
        if busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.01)


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (Linux: its fds' socket inodes, looked up in /proc/net/tcp)."""
    try:
        links = [os.readlink(path) for path in Path(f"/proc/{pid}/fd").iterdir()]
    except (FileNotFoundError, ProcessLookupError):
        return set()
    inodes = {link[len("socket:[") : -1] for link in links if link.startswith("socket:[")}
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def worker_sessions(database_url: str, terminate: bool = False) -> list[tuple[int, str]]:
    """The client port and state of each worker session; ended first (pg_terminate_backend) if `terminate`."""
    ended = ", pg_terminate_backend(pid)" if terminate else ""
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    f"SELECT coalesce(client_port, 0), coalesce(state, ''){ended} FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": WORKER_APPLICATION},
            ).all()
            return [(int(row[0]), str(row[1])) for row in rows]
    finally:
        engine.dispose()


class TestProcessKills:
    def test_sigkill_of_the_worker_main_process(
        self, begin: Begin, workers: Workers, broker_url: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        run = begin("sigkill worker main process")
        current = workers.start()
        run.send(SPREAD)
        stranded = []
        for moment in random_moments(rng, 3, 0.5, SPREAD):
            run.at(moment)
            run.strikes.append(time.monotonic())
            os.kill(current.process.pid, signal.SIGKILL)
            current.process.wait(10)
            with redis.Redis.from_url(broker_url) as client:
                stranded.append(int(client.hlen(UNACKED)))
            # Its pool processes are orphans now: they may still commit what they were applying, unacked.
            current = workers.start()
        run.settle(workers.started, may_lose=len(stranded), tend=workers.watchdog())
        run.expect(any(stranded), f"{len(stranded)} kills, unacked messages left by each: {stranded}")
        finish(run, workers)

    def test_sigkill_of_a_pool_process(self, begin: Begin, workers: Workers, database_url: str, seed: int) -> None:
        rng = random.Random(seed)
        run = begin("sigkill pool process")
        worker = workers.start()
        run.send(SPREAD)
        kills = []
        for moment in random_moments(rng, 5, 0.5, SPREAD):
            run.at(moment)
            # A process between jobs dies harmlessly; the one to kill is inside a transaction, when there is one.
            busy = wait_for_busy_children(worker, database_url)
            victim = rng.choice(busy or worker.children())
            run.strikes.append(time.monotonic())
            os.kill(victim, signal.SIGKILL)
            kills.append("busy" if busy else "idle")
        run.settle([worker], tend=workers.watchdog())
        lost_processes = worker.output().count("WorkerLostError")
        run.expect(lost_processes > 0, f"kills of {kills} processes, {lost_processes} log lines naming WorkerLostError")
        if worker.process.poll() is not None:
            run.problems.append(f"the worker's main process exited ({worker.process.returncode}) with a pool process")
        finish(run, workers)


class TestDatabaseFaults:
    def test_pg_terminate_backend_of_worker_connections(
        self, begin: Begin, workers: Workers, database_url: str, seed: int
    ) -> None:
        rng = random.Random(seed)
        run = begin("pg_terminate_backend")
        worker = workers.start()
        run.send(SPREAD)
        busy = total = 0
        for moment in random_moments(rng, 6, 0.5, SPREAD):
            run.at(moment)
            # Ending an idle session costs a reconnect; ending one inside a transaction is the fault worth testing.
            wait_for_busy_sessions(database_url)
            run.strikes.append(time.monotonic())
            ended = worker_sessions(database_url, terminate=True)
            total += len(ended)
            busy += sum(state != "idle" for _, state in ended)
        run.settle([worker], tend=workers.watchdog())
        run.expect(busy > 0, f"{total} worker sessions ended, {busy} of them mid-transaction")
        finish(run, workers)

    def test_postgresql_stopped_and_started(
        self, begin: Begin, workers: Workers, postgres: PrivatePostgres, seed: int
    ) -> None:
        rng = random.Random(seed)
        run = begin("postgresql stop/start")
        worker = workers.start()
        run.send(SPREAD)
        outages = []
        for moment in random_moments(rng, 2, 0.5, SPREAD - 2):
            run.at(moment)
            # Immediate: a crash, with recovery from the WAL at start. With fsync on, what was committed stays.
            mode = rng.choice(["immediate", "fast"])
            run.strikes.append(time.monotonic())
            postgres.stop(mode)
            down = rng.uniform(1.0, 3.0)
            time.sleep(down)
            postgres.start()
            outages.append(f"{mode} {down:.1f} s")
        run.settle([worker], tend=workers.watchdog())
        retried = worker.output().count("Retry in")
        run.expect(retried > 0, f"outages {outages}, {retried} retries")
        finish(run, workers)

    def test_row_lock_held_past_lock_timeout(
        self, begin: Begin, workers: Workers, database_url: str, bank: Bank, seed: int
    ) -> None:
        rng = random.Random(seed)
        run = begin("row lock past lock_timeout")
        lock_timeout = 2.0
        worker = workers.start(PROCESSOR_LOCK_TIMEOUT=str(lock_timeout))
        run.send(SPREAD)
        held = []
        for moment in random_moments(rng, 2, 0.5, SPREAD - 3):
            run.at(moment)
            account = rng.choice(bank.accounts)
            run.strikes.append(time.monotonic())
            with accounts_locked(database_url, [account.number]):
                time.sleep(lock_timeout * 2)
            held.append(account.number)
        run.settle([worker], tend=workers.watchdog())
        timeouts = worker.output().count("lock timeout")
        run.expect(timeouts > 0, f"locks on {held} for {lock_timeout * 2:g} s each, {timeouts} lock timeouts logged")
        finish(run, workers)


class TestBrokerFaults:
    def test_redis_restarted(self, begin: Begin, workers: Workers, private_redis: PrivateRedis, seed: int) -> None:
        rng = random.Random(seed)
        run = begin("redis restart")
        workers.start()
        run.send(SPREAD)
        restarts = []
        for moment in random_moments(rng, 2, 0.5, SPREAD - 2):
            run.at(moment)
            run.strikes.append(time.monotonic())
            private_redis.kill()
            down = rng.uniform(0.5, 2.0)
            time.sleep(down)
            private_redis.start()
            restarts.append(f"{down:.1f} s")
        # A BRPOP whose reply the killed server never sent loses that message, as a killed worker does. A worker
        # may stop on the lost connection (kombu 5.7 can raise AttributeError restoring its unacked messages then):
        # a supervisor starts another, as docker-compose.yml's restart policy does.
        run.settle(workers.started, may_lose=len(restarts), tend=workers.supervisor())
        reconnects = workers.output().count("Connection to broker lost")
        run.expect(
            reconnects > 0,
            f"restarts after {restarts}, {reconnects} lost broker connections logged;"
            f" {workers.restarts} worker(s) restarted by the supervisor",
        )
        finish(run, workers)

    @pytest.mark.parametrize("fill", ["full", "nearly full"])
    def test_retry_that_the_broker_refuses(
        self,
        begin: Begin,
        workers: Workers,
        broker_url: str,
        database_url: str,
        postgres: PrivatePostgres,
        fill: str,
    ) -> None:
        """Issue 10, point 1: Redis at maxmemory (noeviction) while the database is down, so retries are refused.

        Full: every write that needs memory is refused, an ack too (kombu's are MULTI transactions). Nearly full:
        a few hundred bytes are left, so a retry (a message of a few kilobytes) is refused but a small ack is not.
        """
        # Fewer than the worker's prefetch (2 x 100), so that every message is delivered before Redis fills up:
        # then no message is in the queue when the broker starts refusing writes, and only retries are refused.
        # Long descriptions make each message a few kilobytes, as payments with a memo are.
        run = begin(f"retry refused by a {fill} redis", payments=150, description="memo " * 100)
        workers.start(PROCESSOR_LOCK_TIMEOUT="4")
        with redis.Redis.from_url(broker_url) as client:
            # Every account locked: the messages are delivered and wait, none finishes before the database goes.
            with accounts_locked(database_url):
                run.send(0).finish()
                wait_for_delivery(client, len(run.messages))
                client.config_set("maxmemory-policy", "noeviction")
                used = int(client.info("memory")["used_memory"])
                client.config_set("maxmemory", "1" if fill == "full" else str(used + 512))
                run.strikes.append(time.monotonic())
                postgres.stop("fast")
            time.sleep(4)
            client.config_set("maxmemory", "0")
            postgres.start()
        # A worker may stop on an error Redis returned (kombu raises its refusals in the worker's main process); a
        # supervisor starts another, as docker-compose.yml's restart policy does, which finds the messages left
        # unacked once the visibility timeout has passed.
        run.settle(workers.started, tend=workers.supervisor(PROCESSOR_LOCK_TIMEOUT="4"))
        refused = workers.output().count("command not allowed when used memory")
        run.expect(
            refused > 0,
            f"{refused} log lines of a write Redis refused; {workers.restarts} worker(s) restarted by the supervisor",
        )
        finish(run, workers)


def wait_for_delivery(client: redis.Redis, count: int) -> None:
    """Until the queue is empty and `count` messages are delivered to a worker, unacked."""
    deadline = time.monotonic() + 30
    while client.llen(QUEUE) > 0 or client.hlen(UNACKED) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"not all {count} messages delivered: {client.llen(QUEUE)} queued")
        time.sleep(0.05)


@contextmanager
def accounts_locked(database_url: str, numbers: list[str] | None = None) -> Iterator[None]:
    """Hold the accounts' row locks (every account's, settlement included, for None) from another session.

    The session may be ended under it (a database stopped meanwhile): the lock is gone then too.
    """
    engine = sqlalchemy.create_engine(database_url, poolclass=sqlalchemy.pool.NullPool)
    connection = engine.connect()
    try:
        connection.execute(
            sqlalchemy.text(
                "SELECT id FROM accounts WHERE CAST(:numbers AS text[]) IS NULL OR number = ANY(:numbers)"
                " ORDER BY id FOR UPDATE"
            ),
            {"numbers": numbers},
        ).all()
        yield
    finally:
        try:
            connection.rollback()
            connection.close()
        except sqlalchemy.exc.DBAPIError:
            pass
        engine.dispose()
