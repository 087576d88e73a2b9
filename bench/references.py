"""The references the project is measured against: pgbench's tpcb-like, and a Celery no-op drained by `-c 2`."""

from __future__ import annotations

import glob
import re
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import noop
from bench.scratch import ScratchBroker, ScratchDatabase
from bench.system import BenchError, Finished, run_ok, running_worker

CELERY = str(Path(sys.executable).with_name("celery"))
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_ANY_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def worker_command(app: str, name: str, queue: str, loglevel: str) -> list[str]:
    """`celery -A APP worker -c 2` (prefork), the same flags for the reference and the project."""
    return [
        CELERY,
        "-A",
        app,
        "worker",
        "-P",
        "prefork",
        "-c",
        "2",
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "-l",
        loglevel,
        "--without-mingle",
        "--without-gossip",
    ]


def pgbench_path() -> str:
    """The pgbench binary: on PATH, or next to the PostgreSQL server."""
    found = shutil.which("pgbench") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))), None)
    if found is None:
        raise BenchError("pgbench not found: install the PostgreSQL client tools")
    return found


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    scale: int
    clients: int
    seconds: int
    init_seconds: float
    run: Finished


def pgbench(
    database: ScratchDatabase, scale: int, seconds: int, env: Mapping[str, str], workdir: Path
) -> PgbenchResult:
    """`pgbench -i -s SCALE` into its own database, then tpcb-like, prepared, 8 clients, 2 threads."""
    url = database.url
    environment = dict(env)
    if url.password:
        environment["PGPASSWORD"] = str(url.password)
    connection = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    binary = pgbench_path()
    database.create(migrate=False)
    init = run_ok([binary, "-i", "-q", "-s", str(scale), *connection, database.name], environment, workdir, 900)
    clients = 8
    done = run_ok(
        [binary, "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds), *connection, database.name],
        environment,
        workdir,
        seconds + 300,
    )
    found = _TPS.search(done.stdout) or _ANY_TPS.search(done.stdout)
    if found is None:
        raise BenchError(f"no tps in pgbench's output:\n{done.stdout}")
    return PgbenchResult(float(found.group(1)), scale, clients, seconds, init.seconds, done)


@dataclass(frozen=True)
class DrainResult:
    """Messages drained by one worker from a full queue: first to last completion."""

    count: int
    rate: float  # per second
    seconds: float
    enqueue_rate: float
    worker_cpu: float


def noop_drain(broker: ScratchBroker, count: int, env: Mapping[str, str], workdir: Path, loglevel: str) -> DrainResult:
    """Enqueue `count` no-op messages by name, then start a `-c 2` worker and time it from first to last done."""
    client = broker.redis
    client.delete(*noop.KEYS, noop.QUEUE)
    app = noop.make_app(broker.url)
    started = time.monotonic()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            app.send_task(noop.TASK, queue=noop.QUEUE, producer=producer)
    enqueue_seconds = time.monotonic() - started
    app.close()
    queued = int(client.llen(noop.QUEUE))
    if queued != count:
        raise BenchError(f"{queued} no-op messages on the queue, {count} sent")
    timeout = 60 + count / 50
    command = worker_command("bench.noop", "bench-noop", noop.QUEUE, loglevel)
    with running_worker("bench-noop", command, env, workdir / "worker-noop.log") as worker:
        before = worker.sample()
        deadline = time.monotonic() + timeout
        while int(client.get(noop.DONE_KEY) or 0) < count:
            worker.check_alive()
            if time.monotonic() > deadline:
                done = int(client.get(noop.DONE_KEY) or 0)
                raise BenchError(f"no-op drain: {done} of {count} done after {timeout:g} s\n{worker.tail()}")
            time.sleep(0.02)
        cpu = worker.sample().cpu - before.cpu
    first, last = float(client.get(noop.FIRST_KEY) or 0), float(client.get(noop.LAST_KEY) or 0)
    seconds = last - first
    client.delete(*noop.KEYS)
    return DrainResult(count, (count - 1) / seconds if seconds > 0 else 0.0, seconds, count / enqueue_seconds, cpu)
