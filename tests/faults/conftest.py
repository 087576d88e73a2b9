"""The fault suite (`make faults`): its own PostgreSQL cluster and Redis server for the whole session, real workers
on them, a printed seed, and the table of faults and outcomes at the end.

The faults stop PostgreSQL, restart Redis and fill its memory: on the shared servers they would break everybody
else's tests, so the suite never touches those. It runs when asked for (`pytest -m faults`, or a path under
tests/faults); a plain `pytest` leaves it out, for the time it takes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType

import pytest
import redis
from sqlalchemy.engine import make_url

from processor.db import admin
from processor.db.engine import get_engine
from tests.conftest import setting
from tests.e2e.conftest import WORKER_ENV, Worker
from tests.faults.bank import TABLE, render_table
from tests.faults.servers import PrivatePostgres, PrivateRedis, temporary_root

SEED_VARIABLE = "FAULTS_SEED"
# Shorter limits than the e2e tests' (the settings still hold: visibility > backoff cap + time limit > soft limit >
# statement timeout), so that what a killed worker held comes back within seconds; outages here last seconds and
# the backoff is capped at 2 s, so there are enough retries not to run out.
FAULT_ENV = {
    "PROCESSOR_TASK_TIME_LIMIT": "6",
    "PROCESSOR_STATEMENT_TIMEOUT": "4",
    "PROCESSOR_VISIBILITY_TIMEOUT": "9",
    "PROCESSOR_RETRY_MAX": "40",
}
# Worker connections carry this application name, so that a fault can end theirs and no one else's.
WORKER_APPLICATION = "abcbank-faults-worker"
HERE = Path(__file__).parent


def _asked_for(config: pytest.Config) -> bool:
    if "faults" in (config.option.markexpr or ""):
        return True
    return any(Path(str(arg).split("::")[0]).resolve().is_relative_to(HERE) for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the fault suite out of a run that did not ask for it (its minutes are not in `make test`'s budget)."""
    if _asked_for(config):
        return
    deselected = [item for item in items if item.get_closest_marker("faults")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("faults")]


def _seed() -> int:
    value = os.environ.get(SEED_VARIABLE)
    if value is None:
        return random.SystemRandom().randrange(1, 10**6)
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"{SEED_VARIABLE}={value!r} is not an integer seed") from None


SEED = _seed()


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"fault suite seed: {SEED} (replay with {SEED_VARIABLE}={SEED} make faults)" if _asked_for(config) else None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE:
        return
    table = render_table(TABLE, SEED)
    path = terminalreporter.config._tmp_path_factory.getbasetemp() / "faults-table.md"  # type: ignore[attr-defined]
    path.write_text(table)
    terminalreporter.write_sep("=", "faults x outcomes")
    terminalreporter.write_line(table)
    terminalreporter.write_line(f"(also in {path})")


class Servers:
    """The session's private PostgreSQL and Redis, removed at the end, on interrupt, or at exit."""

    def __init__(self) -> None:
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        try:
            self.postgres = PrivatePostgres(temporary_root("postgres"))
            self.redis = PrivateRedis(temporary_root("redis"))
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        if self.redis is not None:
            self.redis.remove()
            self.redis = None
        if self.postgres is not None:
            self.postgres.remove()
            self.postgres = None


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    started = Servers()
    atexit.register(started.remove)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        # A terminated run still removes its servers: SystemExit unwinds through this fixture's teardown.
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield started
    finally:
        signal.signal(signal.SIGTERM, previous)
        started.remove()
        atexit.unregister(started.remove)


@pytest.fixture(scope="session")
def postgres(servers: Servers) -> PrivatePostgres:
    assert servers.postgres is not None
    return servers.postgres


@pytest.fixture(scope="session")
def private_redis(servers: Servers) -> PrivateRedis:
    assert servers.redis is not None
    return servers.redis


@pytest.fixture(scope="session")
def database_url(postgres: PrivatePostgres) -> Iterator[str]:
    """The fault suite's database, on its own cluster (replaces the shared server's throwaway database)."""
    url = make_url(postgres.url).set(database="abcbank_faults").render_as_string(hide_password=False)
    admin.create_database(url)
    admin.upgrade(url)
    with setting("DATABASE_URL", url):
        yield url
    get_engine(url).dispose()


@pytest.fixture(scope="session")
def broker_url(private_redis: PrivateRedis) -> Iterator[str]:
    """The fault suite's broker: database 0 of its own Redis server."""
    with setting("CELERY_BROKER_URL", private_redis.url):
        yield private_redis.url


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The run's seed, mixed with the test's name: each fault replays alone with the same choices."""
    return random.Random(f"{SEED}:{request.node.name}").randrange(2**32)


@pytest.fixture
def worker_database_url(database_url: str) -> str:
    return (
        make_url(database_url)
        .update_query_dict({"application_name": WORKER_APPLICATION})
        .render_as_string(hide_password=False)
    )


class Workers:
    """`celery -A processor worker` processes on the private servers; every one of them is gone after the test."""

    def __init__(self, database_url: str, broker_url: str, logs: Path) -> None:
        self._database_url = database_url
        self._broker_url = broker_url
        self._logs = logs
        self.started: list[Worker] = []
        self.restarts = 0

    def start(self, concurrency: int = 2, **env: str) -> Worker:
        return self.launch(concurrency, env)

    def launch(self, concurrency: int, env: Mapping[str, str]) -> Worker:
        environment = {
            **os.environ,
            "DATABASE_URL": self._database_url,
            "CELERY_BROKER_URL": self._broker_url,
            **WORKER_ENV,
            **FAULT_ENV,
            **env,
        }
        worker = Worker(environment, self._logs / f"worker-{len(self.started)}.log", concurrency)
        self.started.append(worker)
        return worker

    def watchdog(self) -> Callable[[], None]:
        """Fail at once, naming why, when the last worker started has exited and nothing would start another."""

        def tend() -> None:
            if self.started and (code := self.started[-1].process.poll()) is not None:
                raise AssertionError(f"the worker exited ({code}) and nothing restarts it:\n{self.output()[-6000:]}")

        return tend

    def supervisor(self, **env: str) -> Callable[[], None]:
        """What a process supervisor does: start a new worker whenever the last one started has exited."""

        def tend() -> None:
            if self.started and self.started[-1].process.poll() is not None:
                self.restarts += 1
                self.launch(2, env)

        return tend

    def output(self) -> str:
        return "\n".join(worker.output() for worker in self.started)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()
            # A worker whose main process was killed leaves its pool processes behind, in its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)


@pytest.fixture
def workers(worker_database_url: str, broker_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Workers for one test, on a broker emptied before and after: a fault leaves messages behind."""
    with redis.Redis.from_url(broker_url) as client:
        client.flushdb()
        started = Workers(worker_database_url, broker_url, tmp_path)
        yield started
        started.stop_all()
        client.flushdb()
