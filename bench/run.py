"""One bench run: scratch databases and a Redis database number, the references, the project's stages, cleanup."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType

from rich.console import Console

from bench import api, project, references
from bench.report import Report
from bench.scratch import (
    Database,
    ScratchBroker,
    ScratchDatabase,
    child_environment,
    is_local,
    run_id,
    server_url,
)
from bench.system import BenchError, stop_everything


@dataclass(frozen=True)
class Sizes:
    """How big each stage is; `quick` makes a smoke run of a few seconds a stage."""

    rows: int
    messages: int
    quick: bool

    @property
    def pgbench_scale(self) -> int:
        return 1 if self.quick else 10

    @property
    def pgbench_seconds(self) -> int:
        return 2 if self.quick else 15

    @property
    def accounts(self) -> int:
        return 10 if self.quick else 20

    @property
    def latency_seconds(self) -> float:
        return 2.0 if self.quick else 10.0

    @property
    def api_seconds(self) -> float:
        return 1.0 if self.quick else 5.0

    @property
    def small_rows(self) -> int:
        """The file that `submit`'s peak memory at `rows` is compared with: 10,000 rows, or a tenth of a small run."""
        return 10_000 if self.rows > 10_000 else max(1, self.rows // 10)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_bench(sizes: Sizes, loglevel: str, say: Console, workdir: Path) -> Report:
    """Measure everything in order; returns the report, its `error` set if a stage failed."""
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    name = f"abcbank_bench_{run_id()}"
    broker = ScratchBroker()
    pgbench_db = ScratchDatabase(f"{name}_pgbench")
    bank_db = ScratchDatabase(name)
    db: Database | None = None
    report = Report(
        {
            "rows": sizes.rows,
            "messages": sizes.messages,
            "quick": sizes.quick,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "celery": version("celery"),
            "worker_loglevel": loglevel,
        }
    )

    started = time.monotonic()

    def note(text: str) -> None:
        say.print(f"[bold]bench[/] [dim]{time.monotonic() - started:6.1f} s[/] {text}")

    try:
        broker_url = broker.claim()
        # Celery prefers CELERY_BROKER_URL to the broker an app is given: set it, so nothing here reaches another.
        os.environ["CELERY_BROKER_URL"] = broker_url
        os.environ["DATABASE_URL"] = bank_db.url_string
        report.settings["redis_db"] = broker.number
        report.settings["database"] = name
        note(f"work directory {workdir}, Redis database {broker.number}, databases {name}*")

        env = child_environment(bank_db.url_string, broker_url, str(workdir))
        note(f"pgbench tpcb-like: scale {sizes.pgbench_scale}, 8 clients, {sizes.pgbench_seconds} s")
        pg = references.pgbench(pgbench_db, sizes.pgbench_scale, sizes.pgbench_seconds, env, workdir)
        pgbench_db.drop()
        report.add(
            "pgbench",
            "pgbench tpcb-like (-M prepared -c 8 -j 2)",
            pg.tps,
            "tps",
            headline=True,
            note=f"scale {pg.scale}, {pg.seconds} s",
        )

        note(f"Celery no-op: {sizes.messages} messages, then a -c 2 worker drains them")
        drained = references.noop_drain(broker, sizes.messages, env, workdir, loglevel)
        report.add(
            "noop",
            "Celery no-op drained by -c 2",
            drained.rate,
            "messages/s",
            headline=True,
            note="acks late, JSON, task events, prefetch x4",
        )
        report.add("noop", "enqueue (send_task)", drained.enqueue_rate, "messages/s")
        report.add("noop", "worker CPU (main + pool)", drained.worker_cpu, "CPU s")

        note("a fresh database, migrated with Alembic; customers and accounts through the processor CLI")
        bank_db.create(migrate=True)
        db = Database(bank_db.url_string)
        report.settings["postgresql"] = db.version()
        report.settings["redis"] = broker.redis.info()["redis_version"]
        local = is_local(server_url())
        report.settings["postgres_cpu"] = "read from /proc" if local else "n/a (remote server)"
        ctx = project.Context(env, db, broker, workdir, report, loglevel, db.clock_offset(), local)
        bank = project.open_bank(ctx, sizes.accounts)

        note(f"single-payment messages: {sizes.messages} enqueued, then one worker -c 2")
        single = project.single_stage(ctx, bank, sizes.messages, drained.rate)

        note(f"uniform file: {sizes.rows} rows through submit file --wait")
        uniform = project.file_stage(ctx, bank, sizes.rows, pg.tps)

        note(f"payroll file: {sizes.rows} rows from one account")
        project.payroll_stage(ctx, bank, sizes.rows, uniform.rate)

        note(f"hot accounts: {sizes.rows} transfers among {project.HOT_ACCOUNTS} accounts")
        project.hot_stage(ctx, bank, sizes.rows, uniform.rate)

        note(f"latency: single payments at {single / 2:,.0f}/s for {sizes.latency_seconds:g} s")
        project.latency_stage(ctx, bank, max(1.0, single / 2), sizes.latency_seconds)

        note(f"memory: submit file at {sizes.small_rows} rows, against {sizes.rows}")
        project.memory_stage(ctx, bank, sizes.small_rows, uniform)

        note(f"HTTP API: single payments, then batches of {api.BATCH}, {sizes.api_seconds:g} s each")
        api.api_stage(ctx, bank, sizes.api_seconds)
    except BenchError as error:
        report.error = str(error)
    finally:
        # Cleanup must finish even if Ctrl-C is pressed again.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stop_everything()
            if db is not None:
                db.dispose()
            for database in (pgbench_db, bank_db):
                try:
                    database.drop()
                except Exception as error:
                    say.print(f"[red]bench: could not drop {database.name}:[/] {error}")
            broker.release()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return report


def make_workdir() -> Path:
    """A directory for the run's logs, files and scratch space."""
    return Path(tempfile.mkdtemp(prefix="abcbank-bench-"))


def remove_workdir(workdir: Path) -> None:
    """Remove the logs and files of a run that passed."""
    shutil.rmtree(workdir, ignore_errors=True)
