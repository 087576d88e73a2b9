"""The stack as it is deployed: a real worker connecting as the worker role, `submit` as the read-only role.

The database is given to this run's own roles by `processor db roles` (tests/roles.py); every payment goes through
the queue, so what the worker and `submit` do here is all they can do with those grants.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from celery import Celery

from processor.db.roles import Kind
from processor.domain.outcomes import OutcomeStatus
from processor.messages import QUEUE
from processor.services.accounts import get_account, open_account
from processor.services.customers import register_customer
from processor.services.held import list_held
from processor.services.verify import verify_ledger
from tests.conftest import ThrowawayDatabases
from tests.e2e.conftest import CELERY, StartWorker, wait_for_outcomes
from tests.e2e.payment_files import submit, wait_until, write_csv
from tests.requests import deposit, transfer, unique
from tests.roles import RoledDatabase, roled_database


@pytest.fixture
def roled(databases: ThrowawayDatabases) -> Iterator[RoledDatabase]:
    with roled_database(databases) as database:
        yield database


def test_the_worker_and_submit_run_on_their_restricted_roles(
    roled: RoledDatabase, producer: Celery, start_worker: StartWorker, broker_url: str, tmp_path: Path
) -> None:
    operator = partial(roled.uow, Kind.OPERATOR)
    customer = register_customer(operator(), "Ada Lovelace", f"{unique('ada')}@example.com", actor="test")
    first = open_account(operator(), customer.number, "standard", "GBP", "test", ["GBP"], None)
    second = open_account(operator(), customer.number, "reward", "GBP", "test", ["GBP"], None)
    worker = start_worker(concurrency=1, DATABASE_URL=roled.url(Kind.WORKER), **roled.role_env())
    reader_env = roled.env(Kind.READER, CELERY_BROKER_URL=broker_url, TMPDIR=str(tmp_path))

    # Single messages, a duplicate, and one with no reference, which the worker holds for operators.
    funding, paid = unique("funding"), unique("paid")
    fund = {"reference": funding, "account": first.number, "amount": "100.00", "currency": "GBP"}
    move = {
        "reference": paid,
        "source": first.number,
        "destination": second.number,
        "amount": "30.00",
        "currency": "GBP",
    }
    for task, kwargs in [("payments.deposit", fund), ("payments.deposit", fund), ("payments.transfer", move)]:
        producer.send_task(task, kwargs=kwargs, queue=QUEUE)
    unreadable = producer.send_task("payments.deposit", kwargs={"account": first.number, "amount": "1.00"}, queue=QUEUE)
    # A file, sent as a payments.batch and waited for by `submit` on the read-only role.
    rows = [deposit(second, "20.00"), transfer(second, first, "5.00")]
    sent = submit(
        ["file", str(write_csv(tmp_path / "pay.csv", rows)), "--wait", "--timeout", "45", "--json"], reader_env
    )
    outcomes = wait_for_outcomes(partial(roled.uow, Kind.READER), [funding, paid], timeout=45, workers=[worker])
    status = submit(["status", paid, "--json"], reader_env)
    single = submit(["deposit", "--account", first.number, "--amount", "2.50", "--wait", "--json"], reader_env)
    wait_until(lambda: bool(list_held(operator())), 30, "the message without a reference to be held")

    assert sent.code == 0, sent.stderr
    assert json.loads(sent.stdout)["applied"] == 2
    assert {o.status for o in outcomes.values()} == {OutcomeStatus.APPLIED}
    assert status.code == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "applied"
    assert single.code == 0, single.stderr
    assert json.loads(single.stdout)["status"] == "applied"
    assert [h.task_id for h in list_held(operator())] == [unreadable.id]
    assert get_account(operator(), first.number).balance == Decimal("77.50")
    assert get_account(operator(), second.number).balance == Decimal("45.00")
    assert verify_ledger(operator()) == []
    assert "permission denied" not in worker.output()


def test_a_worker_started_as_the_read_only_role_refuses_to_start(roled: RoledDatabase, broker_url: str) -> None:
    # It could take messages but record neither outcomes nor holds: every one would go back to the queue.
    environment = roled.env(Kind.READER, CELERY_BROKER_URL=broker_url)
    result = subprocess.run(
        [CELERY, "-A", "processor", "worker", "-c", "1", "--without-mingle", "--without-gossip"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: the database role {roled.names.of(Kind.READER)} may not record payments (no ")
    assert "INSERT on transactions" in error
    assert "Traceback" not in result.stderr
