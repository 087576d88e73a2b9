"""End-to-end: a real Redis database of this run's own, and real `celery -A processor worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import redis
from celery import Celery

from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.messages import QUEUE
from processor.services.payments import get_outcomes
from tests.builders import UowFactory

CELERY = str(Path(sys.executable).with_name("celery"))
# Short, so that a killed worker's messages come back within seconds; still longer than the retry backoff cap
# plus the task time limit, as the settings require.
WORKER_ENV = {
    "PROCESSOR_VISIBILITY_TIMEOUT": "15",
    "PROCESSOR_RETRY_BACKOFF_MAX": "2",
    "PROCESSOR_TASK_TIME_LIMIT": "10",
    "PROCESSOR_STATEMENT_TIMEOUT": "5",
    "PROCESSOR_LOCK_TIMEOUT": "2",
}


@pytest.fixture
def producer(broker_url: str) -> Iterator[Celery]:
    """A plain Celery producer that knows nothing of this project but the task names and the queue."""
    app = Celery("producer", broker=broker_url)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    yield app
    app.close()


class Worker:
    """A `celery -A processor worker` process; its output goes to a log file that a failing test shows."""

    def __init__(self, env: Mapping[str, str], log: Path, concurrency: int) -> None:
        self.log = log
        self.name = f"test-{uuid.uuid4().hex[:8]}@%h"
        self._log_file = log.open("ab")
        command = [CELERY, "-A", "processor", "worker", "-l", "info", "-c", str(concurrency), "-n", self.name]
        self.process = subprocess.Popen(
            [*command, "--without-mingle", "--without-gossip"],
            env=dict(env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill reaches the pool children too
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.output()}")
            if " ready." in self.output():
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(pid) for pid in out.split()]

    def kill(self) -> None:
        """SIGKILL the whole worker, main process and pool children, as a crashed host would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Warm shutdown: finish the running tasks, give back the reserved ones."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(database_url: str, broker_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start workers on the test database and broker; each is stopped after the test."""
    workers: list[Worker] = []

    def start(concurrency: int = 2, **env: str) -> Worker:
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            **WORKER_ENV,
            **env,
        }
        worker = Worker(environment, tmp_path / f"worker-{len(workers)}.log", concurrency)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def queue_is_empty(broker_url: str) -> Callable[[], bool]:
    client = redis.Redis.from_url(broker_url)
    return lambda: client.llen(QUEUE) == 0


def wait_for_outcomes(
    make_uow: UowFactory, references: list[str], timeout: float = 120.0, workers: list[Worker] | None = None
) -> dict[str, Outcome]:
    """Every reference's outcome, polling until none is pending; fails with the workers' logs if time runs out."""
    deadline = time.monotonic() + timeout
    outcomes: dict[str, Outcome] = {}
    pending = list(dict.fromkeys(references))
    while pending:
        outcomes.update(
            (reference, outcome)
            for reference, outcome in get_outcomes(make_uow(), pending).items()
            if outcome.status is not OutcomeStatus.PENDING
        )
        pending = [r for r in pending if r not in outcomes]
        if pending and time.monotonic() > deadline:
            logs = "\n".join(w.output()[-5000:] for w in workers or [])
            raise AssertionError(f"{len(pending)} references still pending, e.g. {pending[:5]}\n{logs}")
        if pending:
            time.sleep(0.2)
    return outcomes
