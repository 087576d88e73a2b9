"""End-to-end: no payment message is acked without its outcome or its hold in the database, whatever fails.

Each test makes one way of losing a message happen for real: a retry the broker refuses, a hold the database
refuses, a run cut short by the time limit, a worker pointed at a database whose schema is behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import sqlalchemy
from alembic.script import ScriptDirectory
from celery import Celery

from processor.db import admin
from processor.db.engine import get_engine
from processor.domain.held import HeldReason
from processor.domain.outcomes import OutcomeStatus
from processor.messages import QUEUE
from processor.services.held import list_held
from processor.services.payments import get_outcome
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account
from tests.conftest import ThrowawayDatabases
from tests.e2e.conftest import CELERY, StartWorker, Worker, wait_for_outcomes
from tests.e2e.faults import account_locked, wait_for_lock_waiters, wait_until
from tests.requests import unique


def deposit(producer: Celery, account: str, reference: str, amount: str = "10.00") -> None:
    kwargs = {"reference": reference, "account": account, "amount": amount, "currency": "GBP"}
    producer.send_task("payments.deposit", kwargs=kwargs, queue=QUEUE)


def logged(worker: Worker, text: str) -> bool:
    return text in worker.output()


class TestSchemaBehindTheCode:
    def test_worker_refuses_to_start_and_takes_no_message(
        self, databases: ThrowawayDatabases, broker_url: str, producer: Celery
    ) -> None:
        stale = databases.create("stale")
        try:
            admin.upgrade(stale, "0003")
            deposit(producer, "10000000", unique("stale"))
            environment = {**os.environ, "DATABASE_URL": stale, "CELERY_BROKER_URL": broker_url}
            result = subprocess.run(
                [CELERY, "-A", "processor", "worker", "-c", "1", "--without-mingle", "--without-gossip"],
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            databases.drop(stale)
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            f"error: the database schema is at revision 0003, not {admin_head()}: run `processor db upgrade`"
        ], result.stderr
        assert "Traceback" not in result.stderr
        # The message it would have taken is still in the queue, for a worker that can record it.
        assert redis.Redis.from_url(broker_url).llen(QUEUE) == 1


def admin_head() -> str:
    [head] = ScriptDirectory.from_config(admin.alembic_config("postgresql://unused")).get_heads()
    return head


class TestHoldTheDatabaseRefuses:
    @pytest.mark.parametrize(
        "task",
        [
            # Held by the task, in a pool process: without a reference no outcome can be recorded.
            pytest.param("payments.deposit", id="in-the-task"),
            # Held by the worker's main process, before Celery drops a message for a task it does not know.
            pytest.param("payments.refund", id="unknown-task"),
        ],
    )
    def test_message_goes_back_to_the_queue_until_it_can_be_held(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str, task: str
    ) -> None:
        worker = start_worker(concurrency=1, PROCESSOR_GROUP_SIZE="1")
        engine = get_engine(database_url)
        # As after a bad downgrade: the table that holds unreadable messages is gone while the worker runs.
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("ALTER TABLE held_messages RENAME TO held_messages_away"))
        try:
            task_id = producer.send_task(task, kwargs={"amount": "10.00"}, queue=QUEUE).id
            wait_until(lambda: logged(worker, "payment.hold_failed"), 20, "a hold that failed", [worker])
        finally:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("ALTER TABLE held_messages_away RENAME TO held_messages"))
        wait_until(lambda: any(h.task_id == task_id for h in list_held(make_uow())), 30, "the hold", [worker])
        assert [h.reason for h in list_held(make_uow()) if h.task_id == task_id] == [HeldReason.UNREADABLE]
        assert "kept=back to the queue" in worker.output()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own, whose memory limit the test may lower without touching anyone else's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--maxmemory-policy",
            "noeviction",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: _answers(client), 10, "the private Redis server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def refuse_writes(client: redis.Redis) -> None:
    """Redis refuses every write that needs memory from now on, as a full Redis under `noeviction` does."""
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.lpush("probe", "x" * 1024)


class TestRetryTheBrokerRefuses:
    def test_payment_is_applied_once_the_broker_takes_writes_again(
        self,
        make_uow: UowFactory,
        start_worker: StartWorker,
        database_url: str,
        private_redis: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        account = make_account(make_uow)
        # Celery prefers CELERY_BROKER_URL to the broker it is given, and the run's fixtures set it.
        monkeypatch.setenv("CELERY_BROKER_URL", private_redis)
        producer = Celery("producer", broker=private_redis)
        producer.conf.update(task_serializer="json")
        worker = start_worker(
            concurrency=1,
            CELERY_BROKER_URL=private_redis,
            PROCESSOR_GROUP_SIZE="1",
            PROCESSOR_LOCK_TIMEOUT="1",
            PROCESSOR_STATEMENT_TIMEOUT="2",
            PROCESSOR_TASK_TIME_LIMIT="4",
            PROCESSOR_VISIBILITY_TIMEOUT="8",
        )
        client = redis.Redis.from_url(private_redis)
        reference = unique("full")
        try:
            with account_locked(database_url, account.number):
                deposit(producer, account.number, reference)
                wait_for_lock_waiters(database_url, 1, worker)
                # The lock wait times out, a transient error: the retry is a new message, which Redis now refuses.
                refuse_writes(client)
                wait_until(lambda: logged(worker, "payment.retry_not_sent"), 20, "a refused retry", [worker])
            assert get_outcome(make_uow(), reference).status is OutcomeStatus.PENDING
        finally:
            client.config_set("maxmemory", 0)
        [outcome] = wait_for_outcomes(make_uow, [reference], timeout=40, workers=[worker]).values()
        assert outcome.status is OutcomeStatus.APPLIED
        assert balance(make_uow, account.number) == Decimal("10.00")
        assert verify_ledger(make_uow()) == []
        producer.close()


SLOW_FIRST_ATTEMPT = """
CREATE SEQUENCE slow_attempts;
CREATE FUNCTION slow_first_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[1] = 'first' THEN
        PERFORM nextval('slow_attempts');
    END IF;
    -- Depth 1: not the ledger guards' own statements (migration 0004), which would add their sleeps to the entries'.
    IF currval('slow_attempts') = 1 AND pg_trigger_depth() = 1 THEN
        PERFORM pg_sleep(TG_ARGV[0]::float);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER slow_transactions AFTER INSERT ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION slow_first_attempt('4.5', 'first');
CREATE TRIGGER slow_entries AFTER INSERT ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION slow_first_attempt('4.5', 'then');
CREATE TRIGGER slow_balances AFTER UPDATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION slow_first_attempt('1.5', 'then');
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON transactions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION slow_first_attempt('4', 'then');
"""
WITHOUT_SLOWNESS = """
DROP TRIGGER IF EXISTS slow_transactions ON transactions;
DROP TRIGGER IF EXISTS slow_entries ON ledger_entries;
DROP TRIGGER IF EXISTS slow_balances ON accounts;
DROP TRIGGER IF EXISTS slow_commit ON transactions;
DROP FUNCTION IF EXISTS slow_first_attempt();
DROP SEQUENCE IF EXISTS slow_attempts;
"""


class TestTimeLimit:
    def test_a_slow_first_attempt_is_rolled_back_and_retried_not_held(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker, database_url: str
    ) -> None:
        account = make_account(make_uow)
        # Soft limit 10 s, hard limit 12 s. The first attempt's statements take 4.5 + 4.5 + 1.5 s, each within the
        # statement timeout, and its commit 4 s more: the soft limit lands in the third statement and is raised
        # when it returns, at 10.5 s, before the commit that the hard limit would have killed at 12 s.
        worker = start_worker(
            concurrency=1,
            PROCESSOR_GROUP_SIZE="1",
            PROCESSOR_TASK_TIME_LIMIT="12",
            PROCESSOR_STATEMENT_TIMEOUT="5",
            PROCESSOR_VISIBILITY_TIMEOUT="15",
        )
        engine = get_engine(database_url)
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(SLOW_FIRST_ATTEMPT))
        reference = unique("slow")
        try:
            deposit(producer, account.number, reference)
            [outcome] = wait_for_outcomes(make_uow, [reference], timeout=40, workers=[worker]).values()
        finally:
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text(WITHOUT_SLOWNESS))
        assert outcome.status is OutcomeStatus.APPLIED
        assert "SoftTimeLimitExceeded" in worker.output()
        assert [h for h in list_held(make_uow()) if h.reference == reference] == []
        assert balance(make_uow, account.number) == Decimal("10.00")
