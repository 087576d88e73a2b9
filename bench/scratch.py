"""The bench's own PostgreSQL databases and Redis database number, made for one run and removed at its end."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import sqlalchemy
from sqlalchemy.engine import URL, make_url

from bench.system import ROOT, BenchError
from processor.db import admin

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/abcbank"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# The test suite's claim protocol (tests/conftest.py): the same key, so that a bench and a test run that look at
# an empty database at the same moment cannot both take it. Database 0 is the default broker, 15 the demo's.
CLAIM_KEY = "abcbank:test-claim"
CLAIM_SECONDS = 3600
CANDIDATES = range(14, 0, -1)  # from the top, so that the tests, which claim from 1 up, rarely meet the bench


def run_id() -> str:
    """A short id naming this run's databases."""
    return uuid.uuid4().hex[:8]


def server_url() -> URL:
    """The PostgreSQL server the project is configured for (DATABASE_URL), whatever database it names."""
    return make_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))


def is_local(url: URL) -> bool:
    """Whether the server runs on this machine, so that its processes' CPU time can be read from /proc."""
    return (url.host or "localhost") in ("localhost", "127.0.0.1", "::1")


class ScratchDatabase:
    """A database of this run's own on the configured server; `drop` removes it, connections and all."""

    def __init__(self, name: str) -> None:
        self.url = server_url().set(database=name)
        self.name = name
        self.created = False

    @property
    def url_string(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def create(self, migrate: bool) -> None:
        """Create it (it must not exist yet) and, with `migrate`, bring it to Alembic's head."""
        if not admin.create_database(self.url_string):
            raise BenchError(f"database {self.name} exists already; refusing to use it")
        self.created = True
        if migrate:
            admin.upgrade(self.url_string)

    def drop(self) -> None:
        """Drop it if this run created it."""
        if self.created:
            admin.drop_database(self.url_string)
            self.created = False


class Database:
    """Read-only SQL against the bench database: counts, timestamps, the server's clock."""

    def __init__(self, url: str) -> None:
        self.engine = sqlalchemy.create_engine(url, pool_size=2, max_overflow=2)

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sqlalchemy.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(sql), params)]

    def clock_offset(self) -> float:
        """The server's clock minus this process's time.time(), in seconds (about 0 when both are this host's)."""
        best: tuple[float, float] | None = None
        with self.engine.connect() as connection:
            for _ in range(5):
                before = time.time()
                server = float(
                    connection.execute(sqlalchemy.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
                )
                after = time.time()
                if best is None or after - before < best[0]:
                    best = (after - before, server - (before + after) / 2)
        assert best is not None
        return best[1]

    def version(self) -> str:
        return str(self.scalar("SHOW server_version"))

    def dispose(self) -> None:
        self.engine.dispose()


class ScratchBroker:
    """A Redis database number claimed for this run (never 0), flushed at the end."""

    def __init__(self) -> None:
        base = urlsplit(os.environ.get("CELERY_BROKER_URL", DEFAULT_BROKER_URL))
        if base.scheme not in ("redis", "rediss"):
            raise BenchError(f"the bench needs a plain Redis broker URL, not {base.scheme}://")
        self._base = base
        self._claim = f"abcbank-bench-run-{uuid.uuid4().hex}"
        self.number: int | None = None
        self.client: redis.Redis | None = None

    def url_for(self, number: int) -> str:
        return urlunsplit((self._base.scheme, self._base.netloc, f"/{number}", self._base.query, ""))

    def claim(self) -> str:
        """Take the first empty database of 14 down to 1; returns its URL."""
        for number in CANDIDATES:
            client = redis.Redis.from_url(self.url_for(number))
            try:
                if client.dbsize() == 0 and client.set(CLAIM_KEY, self._claim, nx=True, ex=CLAIM_SECONDS):
                    self.number, self.client = number, client
                    return self.url
            except redis.RedisError as error:
                client.close()
                raise BenchError(f"cannot use Redis at {self.url_for(number)}: {error}") from error
            client.close()
        raise BenchError("no empty Redis database among 14 to 1 for the bench")

    @property
    def url(self) -> str:
        assert self.number is not None
        return self.url_for(self.number)

    @property
    def redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def refresh(self) -> None:
        """Keep the claim for another hour (a long run outlives the first)."""
        if self.client is not None and self.client.get(CLAIM_KEY) == self._claim.encode():
            self.client.expire(CLAIM_KEY, CLAIM_SECONDS)

    def release(self) -> None:
        """FLUSHDB the claimed database, if it is still this run's."""
        if self.client is None:
            return
        # An expired claim is still this run's: the database was never empty, so no one else could take it.
        if self.client.get(CLAIM_KEY) in (self._claim.encode(), None):
            self.client.flushdb()
        self.client.close()
        self.client = None


def child_environment(database_url: str, broker_url: str, workdir: str) -> dict[str, str]:
    """What every child of the bench sees: the bench's database and broker, and `bench` importable."""
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "PYTHONPATH": python_path,
        "TMPDIR": workdir,
        "PROCESSOR_ACTOR": "bench",
    }
