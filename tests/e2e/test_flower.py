"""Flower watches a real worker: its API lists the worker and the payment tasks with their outcomes, behind basic auth.

docs/architecture.md, "Celery settings": task events are on, and each task returns its outcome, so Flower shows it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery

from processor.domain.outcomes import OutcomeStatus
from processor.messages import QUEUE
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import CELERY, StartWorker, wait_for_outcomes
from tests.requests import unique

T = TypeVar("T")
WAIT = 20.0
CREDENTIALS = ("user", "secret")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def poll(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s")
        time.sleep(0.2)


@dataclass
class Flower:
    """A `celery -A processor flower` process on a port of its own; its output goes to a log file."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def status(self, path: str, headers: dict[str, str] | None = None) -> int:
        """The HTTP status of a GET; an error status is an answer too."""
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            error.close()
            return error.code

    def api(self, path: str) -> Any:
        """GET an API path with the credentials; the decoded JSON body."""
        request = urllib.request.Request(self.url + path, headers=basic_auth(*CREDENTIALS))
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def wait_ready(self) -> None:
        def answers() -> bool | None:
            assert self.process.poll() is None, f"flower exited with {self.process.returncode}:\n{self.output()}"
            try:
                self.status("/healthcheck")
            except OSError:
                return None
            return True

        poll(answers, f"answer from Flower at {self.url}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def flower(database_url: str, broker_url: str, tmp_path: Path) -> Iterator[Flower]:
    """Flower on the test broker with basic auth, as `make flower` runs it; stopped after the test."""
    port = free_port()
    # Only the FLOWER_ settings given here: one left in the caller's environment would change what is tested.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("FLOWER_")}
    environment |= {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "FLOWER_BASIC_AUTH": ":".join(CREDENTIALS),
    }
    log = tmp_path / "flower.log"
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            [CELERY, "-A", "processor", "flower", f"--port={port}", "--address=127.0.0.1"],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    running = Flower(f"http://127.0.0.1:{port}", process, log)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_api_lists_the_worker(flower: Flower, start_worker: StartWorker) -> None:
    worker = start_worker()
    name = worker.name.removesuffix("%h")

    # refresh=1 asks the workers now (a broadcast), rather than showing what Flower learnt before.
    workers = poll(
        lambda: {k: v for k, v in flower.api("/api/workers?refresh=1").items() if k.startswith(name)} or None,
        f"worker {name} in /api/workers",
    )

    [info] = workers.values()
    assert {"payments.deposit", "payments.withdraw", "payments.transfer"} <= set(info["registered"])
    assert [queue["name"] for queue in info["active_queues"]] == [QUEUE]


def test_api_lists_payment_tasks_with_their_outcomes(
    flower: Flower, start_worker: StartWorker, producer: Celery, make_uow: UowFactory
) -> None:
    source, destination = make_account(make_uow, balance="100.00"), make_account(make_uow)
    worker = start_worker()
    payments = {
        "payments.deposit": {"account": destination.number},
        "payments.withdraw": {"account": source.number},
        "payments.transfer": {"source": source.number, "destination": destination.number},
    }
    sent: dict[str, tuple[str, str]] = {}
    for task, accounts in payments.items():
        reference = unique("flower")
        kwargs = {"reference": reference, "amount": "5.00", "currency": "GBP", **accounts}
        sent[str(producer.send_task(task, kwargs=kwargs, queue=QUEUE).id)] = (task, reference)
    outcomes = wait_for_outcomes(make_uow, [r for _, r in sent.values()], timeout=WAIT, workers=[worker])
    assert {o.status for o in outcomes.values()} == {OutcomeStatus.APPLIED}

    # Flower learns of each task from the worker's events, a moment after the ledger has its outcome.
    def succeeded() -> dict[str, Any] | None:
        tasks = flower.api("/api/tasks")
        done = {i: tasks[i] for i in sent if i in tasks and tasks[i]["state"] == "SUCCESS"}
        return done if len(done) == len(sent) else None

    tasks = poll(succeeded, "SUCCESS for every task in /api/tasks")

    for task_id, (name, reference) in sent.items():
        assert tasks[task_id]["name"] == name
        assert reference in tasks[task_id]["kwargs"]
        # The task returns the outcome; its event carries repr() of it, which Flower shows as it is.
        assert f"'reference': '{reference}'" in tasks[task_id]["result"]
        assert "'status': 'applied'" in tasks[task_id]["result"]


def test_requests_without_the_credentials_are_refused(flower: Flower) -> None:
    wrong = basic_auth(CREDENTIALS[0], "not-the-secret")

    assert flower.status("/api/workers", basic_auth(*CREDENTIALS)) == 200
    assert flower.status("/api/workers") == 401
    assert flower.status("/api/workers", wrong) == 401
    assert flower.status("/api/tasks") == 401
    assert flower.status("/") == 401
