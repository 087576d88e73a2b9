"""The project's stages: single-payment messages, payment files (uniform, payroll, hot accounts), latency, memory.

Everything goes through the project's public interfaces: the `processor` and `submit` commands, `celery -A
processor worker`, and plain Celery messages by task name on the queue. The bench reads the database only to
count and time outcomes.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from bench.references import worker_command
from bench.report import Report, at_least, below, flat
from bench.scratch import Database, ScratchBroker
from bench.system import MIB, BenchError, Child, Finished, Worker, postgres_cpu, run, run_ok, running_worker
from processor.messages import QUEUE, Deposit, Transfer

BIN = Path(sys.executable).parent
PROCESSOR = str(BIN / "processor")
SUBMIT = str(BIN / "submit")
HEADER = "reference,type,source,destination,amount,currency,description"
CURRENCY = "GBP"
# Far more than any bench file moves, so that no uniform or hot-account payment is refused for funds.
OVERDRAFT = "1000000000.00"
HOT_ACCOUNTS = 10
POLL = 0.05
# `submit file`'s plain progress (stderr not a terminal) prints this line when every row has been read and sent.
_READ_DONE = re.compile(r"^(\d+) of (\d+) rows read\b")
_DEADLOCK = re.compile(r"deadlock", re.IGNORECASE)


@dataclass
class Context:
    env: dict[str, str]
    db: Database
    broker: ScratchBroker
    workdir: Path
    report: Report
    loglevel: str
    clock_offset: float  # the database's clock minus time.time()
    local_postgres: bool  # whether the server's processes are in this machine's /proc


@dataclass(frozen=True)
class Bank:
    accounts: tuple[str, ...]
    payroll_source: str


def cli_json(ctx: Context, *command: str, timeout: float = 120.0) -> Any:
    """Run a project command with --json; its parsed output (BenchError if it fails)."""
    done = run_ok([*command, "--json"], ctx.env, ctx.workdir, timeout)
    return json.loads(done.stdout)


def open_bank(ctx: Context, accounts: int) -> Bank:
    """One customer with `accounts` standard accounts that may overdraw, and an unfunded payroll source."""
    customer = cli_json(
        ctx, PROCESSOR, "customer", "register", "--name", "Bench Customer", "--email", "bench@example.com"
    )["number"]

    def open_account(overdraft: str) -> str:
        opened = cli_json(
            ctx,
            PROCESSOR,
            "account",
            "open",
            "--customer",
            str(customer),
            "--type",
            "standard",
            "--currency",
            CURRENCY,
            "--overdraft-limit",
            overdraft,
        )
        return str(opened["number"])

    with ThreadPoolExecutor(2) as pool:
        numbers = list(pool.map(open_account, [OVERDRAFT] * accounts + ["0"]))
    return Bank(tuple(numbers[:-1]), numbers[-1])


@contextmanager
def project_worker(ctx: Context, stage: str) -> Iterator[Worker]:
    """One `celery -A processor worker -c 2` for a stage, its log in the bench's work directory."""
    ctx.broker.refresh()
    command = worker_command("processor", f"bench-{stage}", QUEUE, ctx.loglevel)
    with running_worker(f"bench-{stage}", command, ctx.env, ctx.workdir / f"worker-{stage}.log") as worker:
        yield worker


def plain_producer(broker_url: str) -> Celery:
    """A Celery producer that knows nothing of the project but task names and the queue, as upstream systems."""
    app = Celery("bench-producer", broker=broker_url)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    return app


def top_id(db: Database) -> int:
    return int(db.scalar("SELECT coalesce(max(id), 0) FROM transactions"))


class OutcomeWatch:
    """Outcomes recorded after a moment, polled: when the first became visible, and when all `expected` had."""

    def __init__(self, db: Database, expected: int) -> None:
        self.db = db
        self.expected = expected
        self.base = top_id(db)
        self.first: float | None = None  # time.monotonic()
        self.first_count = 0
        self.done: float | None = None

    def count(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM transactions WHERE id > :base", base=self.base))

    def poll(self) -> bool:
        """True once every expected outcome is visible."""
        if self.done is not None:
            return True
        now = time.monotonic()
        # max(id) is an index lookup; a count is only needed once enough ids have been handed out.
        top = top_id(self.db) - self.base
        if top > 0 and self.first is None:
            self.first, self.first_count = now, self.count()
        if top >= self.expected and self.count() >= self.expected:
            self.done = now
        return self.done is not None

    def wait(self, worker: Worker, timeout: float, what: str) -> None:
        """Poll until all are in; BenchError (with the worker's log) if the worker dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            worker.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{what}: {self.count()} of {self.expected} outcomes after {timeout:g} s; the end of the "
                    f"worker's log:\n{worker.tail()}"
                )
            time.sleep(POLL)

    def rate(self) -> float:
        """Outcomes per second from the first visible to the last."""
        assert self.first is not None
        assert self.done is not None
        seconds = self.done - self.first
        return (self.expected - self.first_count) / seconds if seconds > 0 else 0.0


def drain_timeout(count: int) -> float:
    return 120 + count / 20


# Correctness ------------------------------------------------------------------------------------------------------


def check_stage(ctx: Context, stage: str, prefix: str, base: int, sent: int) -> None:
    """Every reference sent has exactly one outcome and nothing else was recorded; `processor verify` passes."""
    by_status: dict[str, int] = {
        str(row[0]): int(row[1])
        for row in ctx.db.rows(
            "SELECT status, count(*) FROM transactions WHERE starts_with(reference, :prefix) GROUP BY status",
            prefix=prefix,
        )
    }
    found = sum(by_status.values())
    since = int(ctx.db.scalar("SELECT count(*) FROM transactions WHERE id > :base", base=base))
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    ctx.report.check(
        stage,
        "one outcome per row",
        found == sent and since == sent,
        f"{sent} sent, {found} with an outcome ({statuses or 'none'}), {since} new transactions",
    )
    done = run([PROCESSOR, "verify", "--json"], ctx.env, ctx.workdir, 300)
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        result = {}
    ok = done.code == 0 and result.get("ok") is True
    detail = "ok" if ok else (json.dumps(result.get("violations", []))[:300] or done.describe())
    ctx.report.check(stage, "processor verify", ok, detail)


def held_count(ctx: Context) -> int:
    # The most `processor held list` shows on a page; a bench run that held more has failed anyway.
    return len(cli_json(ctx, PROCESSOR, "held", "list", "--all", "--limit", "10000")["items"])


# Single-payment messages -----------------------------------------------------------------------------------------


def single_messages(
    accounts: Sequence[str], count: int, prefix: str, seed: int = 1
) -> list[tuple[str, dict[str, str]]]:
    """A mix of deposits (a third) and transfers across the accounts, by task name and contract kwargs."""
    rng = random.Random(seed)
    messages = []
    for n in range(count):
        amount = f"{rng.randint(100, 50000) / 100:.2f}"
        kwargs = {"reference": f"{prefix}{n}", "amount": amount, "currency": CURRENCY}
        if rng.random() < 1 / 3:
            messages.append((Deposit.task, {**kwargs, "account": rng.choice(accounts)}))
        else:
            source, destination = rng.sample(list(accounts), 2)
            messages.append((Transfer.task, {**kwargs, "source": source, "destination": destination}))
    return messages


def single_stage(ctx: Context, bank: Bank, count: int, noop_rate: float) -> float:
    """Enqueue `count` single-payment messages, then drain them with one worker; returns payments/s."""
    prefix = "single-"
    messages = single_messages(bank.accounts, count, prefix)
    watch = OutcomeWatch(ctx.db, count)
    app = plain_producer(ctx.broker.url)
    started = time.monotonic()
    with app.producer_or_acquire() as producer:
        for task, kwargs in messages:
            app.send_task(task, kwargs=kwargs, queue=QUEUE, producer=producer)
    enqueue_rate = count / (time.monotonic() - started)
    app.close()
    with project_worker(ctx, "single") as worker:
        before = worker.sample()
        watch.wait(worker, drain_timeout(count), "single-payment drain")
        after = worker.sample()
    rate = watch.rate()
    report = ctx.report
    report.add(
        "single",
        "single-payment messages drained by -c 2",
        rate,
        "payments/s",
        reference=("no-op", noop_rate),
        target=at_least(1.0),
        headline=True,
        note=f"{count} messages enqueued first, first to last outcome",
    )
    report.add("single", "enqueue (plain Celery send_task)", enqueue_rate, "messages/s")
    report.add("single", "worker CPU (main + pool)", after.cpu - before.cpu, "CPU s")
    check_stage(ctx, "single", prefix, watch.base, count)
    return rate


# Payment files ----------------------------------------------------------------------------------------------------


@dataclass
class FileRun:
    rows: int
    submit: Finished
    summary: dict[str, Any]
    send_seconds: float | None  # from the start of `submit file` to every row read and sent
    first_outcome: float  # seconds from the start of `submit file`
    last_outcome: float
    worker_cpu: float
    worker_rss_start: int
    worker_rss_end: int
    worker_peak_rss: int
    postgres_cpu: float | None
    worker_log: str

    @property
    def rate(self) -> float:
        return self.rows / self.submit.seconds

    @property
    def apply_seconds(self) -> float:
        return self.last_outcome - self.first_outcome

    @property
    def collect_seconds(self) -> float:
        return max(0.0, self.submit.seconds - self.last_outcome)


def generate(ctx: Context, path: Path, rows: int, seed: int, accounts: Sequence[str]) -> Path:
    """A uniform file from `submit generate`: deposits, withdrawals and transfers among the accounts."""
    choices = [option for number in accounts for option in ("--account", number)]
    command = [SUBMIT, "generate", "--rows", str(rows), "--out", str(path), "--seed", str(seed), "--bad-rows", "0"]
    run_ok([*command, *choices], ctx.env, ctx.workdir, 600)
    return path


def write_file(path: Path, rows: Iterator[tuple[str, str, str, str]]) -> Path:
    """A CSV payment file in the contract's format from (reference, source, destination, amount) transfers."""
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        for reference, source, destination, amount in rows:
            out.write(f"{reference},transfer,{source},{destination},{amount},{CURRENCY},\n")
    return path


def submit_file(
    ctx: Context, stage: str, path: Path, rows: int, prefix: str, before: Callable[[Worker], None] | None = None
) -> FileRun:
    """Start a worker, then time `submit file PATH --wait --json` to its end, watching the outcomes arrive."""
    timeout = drain_timeout(rows)
    with project_worker(ctx, stage) as worker:
        if before is not None:
            before(worker)
        watch = OutcomeWatch(ctx.db, rows)
        start = worker.sample()
        pg_start = postgres_cpu() if ctx.local_postgres else None
        child = Child(
            [SUBMIT, "file", str(path), "--wait", "--timeout", f"{timeout:g}", "--json"], ctx.env, ctx.workdir
        )
        try:
            while not child.poll():
                watch.poll()
                worker.check_alive()
                if time.monotonic() - child.started > timeout + 60:
                    raise BenchError(f"submit file {path.name} still running after {timeout + 60:g} s")
                time.sleep(POLL)
            done = child.finish(10)
        finally:
            child.kill()
        if done.code != 0:
            raise BenchError(done.describe())
        watch.wait(worker, 30, f"{stage} file")
        end = worker.sample()
        pg_end = postgres_cpu() if ctx.local_postgres else None
        log = worker.output()
    assert watch.first is not None
    assert watch.done is not None
    send = next((at for at, line in done.stderr_lines if _READ_DONE.match(line)), None)
    last = min(watch.done, child.ended or watch.done) - child.started
    summary = json.loads(done.stdout)
    run = FileRun(
        rows=rows,
        submit=done,
        summary=summary,
        send_seconds=send,
        first_outcome=watch.first - child.started,
        last_outcome=last,
        worker_cpu=end.cpu - start.cpu,
        worker_rss_start=start.rss,
        worker_rss_end=end.rss,
        worker_peak_rss=end.peak_rss,
        postgres_cpu=None if pg_start is None or pg_end is None else pg_end - pg_start,
        worker_log=log,
    )
    outcomes = int(summary.get("applied", 0)) + int(summary.get("rejected", 0))
    ctx.report.check(
        stage,
        "submit file: every row has an outcome",
        summary.get("rows") == rows and outcomes == rows and summary.get("pending") == 0,
        f"{summary.get('applied')} applied, {summary.get('rejected')} rejected, {summary.get('pending')} pending",
    )
    check_stage(ctx, stage, prefix, watch.base, rows)
    return run


def file_stage(ctx: Context, bank: Bank, rows: int, pgbench_tps: float) -> FileRun:
    """A uniform `submit generate` file of `rows` through `submit file --wait`, broken down by phase."""
    path = generate(ctx, ctx.workdir / "uniform.csv", rows, 1, bank.accounts)
    dry = run([SUBMIT, "file", str(path), "--dry-run", "--json"], ctx.env, ctx.workdir, drain_timeout(rows))
    if dry.code != 0:
        raise BenchError(dry.describe())
    result = submit_file(ctx, "file", path, rows, "batch-1-")
    report = ctx.report
    report.add(
        "file",
        "submit file --wait (uniform)",
        result.rate,
        "rows/s",
        reference=("pgbench tps", pgbench_tps),
        target=at_least(2.0),
        headline=True,
        note=f"{rows} rows, start of submit to its exit ({result.submit.seconds:.1f} s)",
    )
    report.add("file", "read+validate (--dry-run)", dry.seconds, "s", note=f"{rows / dry.seconds:,.0f} rows/s")
    send_note = None if result.send_seconds is None else f"{rows / result.send_seconds:,.0f} rows/s"
    report.add("file", "read+validate+send", result.send_seconds, "s", note=send_note)
    report.add(
        "file",
        "apply (first → last outcome)",
        result.apply_seconds,
        "s",
        note=(f"{rows / result.apply_seconds:,.0f} rows/s; " if result.apply_seconds > 0 else "")
        + f"first outcome {result.first_outcome:.2f} s after the start",
    )
    report.add("file", "outcome collection (last outcome → exit)", result.collect_seconds, "s")
    report.add("file", "submit CPU (user+sys, rusage)", result.submit.cpu, "CPU s")
    report.add("file", "submit --dry-run CPU", dry.cpu, "CPU s")
    report.add("file", "worker CPU (main + pool, /proc)", result.worker_cpu, "CPU s")
    report.add(
        "file",
        "PostgreSQL CPU (/proc, whole server)",
        result.postgres_cpu,
        "CPU s",
        note="all of the server's processes: other users' load counts too",
    )
    report.add("file", "submit peak RSS (rusage)", result.submit.max_rss / MIB, "MiB")
    report.add(
        "file",
        "worker peak RSS (Σ VmHWM)",
        result.worker_peak_rss / MIB,
        "MiB",
        note="main + pool processes; pages shared since the fork count in each",
    )
    return result


def payroll_stage(ctx: Context, bank: Bank, rows: int, uniform_rate: float) -> None:
    """Every row a transfer from one funded source account to the other accounts in turn."""
    amounts = [f"{1000 + (n * 37) % 2000}.{n % 100:02d}" for n in range(rows)]
    total = sum(int(a.replace(".", "")) for a in amounts)
    funding = f"{total // 100}.{total % 100:02d}"
    destinations = bank.accounts
    path = write_file(
        ctx.workdir / "payroll.csv",
        ((f"payroll-{n}", bank.payroll_source, destinations[n % len(destinations)], amounts[n]) for n in range(rows)),
    )

    def fund(_worker: Worker) -> None:
        funded = cli_json(
            ctx,
            SUBMIT,
            "deposit",
            "--account",
            bank.payroll_source,
            "--amount",
            funding,
            "--reference",
            "funding-payroll",
            "--wait",
        )
        if funded.get("status") != "applied":
            raise BenchError(f"the payroll source was not funded: {funded}")

    result = submit_file(ctx, "payroll", path, rows, "payroll-", before=fund)
    ctx.report.add(
        "payroll",
        "payroll file (one source → many)",
        result.rate,
        "rows/s",
        reference=("uniform file", uniform_rate),
        target=at_least(0.5),
        headline=True,
        note=f"{rows} rows from 1 account to {len(destinations)}",
    )


def hot_stage(ctx: Context, bank: Bank, rows: int, uniform_rate: float) -> None:
    """Transfers among 10 accounts only; deadlocks in the worker's log and held messages are counted."""
    hot = bank.accounts[:HOT_ACCOUNTS]
    rng = random.Random(10)

    def transfers() -> Iterator[tuple[str, str, str, str]]:
        for n in range(rows):
            source, destination = rng.sample(hot, 2)
            yield f"hot-{n}", source, destination, f"{rng.randint(100, 10000) / 100:.2f}"

    path = write_file(ctx.workdir / "hot.csv", transfers())
    held_before = held_count(ctx)
    result = submit_file(ctx, "hot", path, rows, "hot-")
    held = held_count(ctx) - held_before
    deadlocks = sum(1 for line in result.worker_log.splitlines() if _DEADLOCK.search(line))
    report = ctx.report
    report.add(
        "hot",
        f"transfers among {len(hot)} hot accounts",
        result.rate,
        "rows/s",
        reference=("uniform file", uniform_rate),
        target=at_least(0.5),
        headline=True,
        note=f"{rows} rows",
    )
    report.add("hot", "deadlock lines in the worker's log", deadlocks, "lines")
    report.add("hot", "held messages (processor held)", held, "messages")


# Latency ----------------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..1)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


class Visibility(threading.Thread):
    """Reads the transactions rows committed after `base` as they appear; notes when each reference became visible.

    A cursor keeps each poll to the newest rows: every id up to it has been seen, or is a hole (an id whose
    transaction rolled back) that stayed missing for HOLE_SECONDS. Ids commit a little out of order, so the rows
    above a missing id are read again until it turns up.
    """

    HOLE_SECONDS = 1.0
    INTERVAL = 0.005

    def __init__(self, db: Database, base: int) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.cursor = base
        self.top = base
        self.ids: set[int] = set()
        self.holes: dict[int, float] = {}
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                rows = self.db.rows(
                    "SELECT id, reference FROM transactions WHERE id > :cursor ORDER BY id", cursor=self.cursor
                )
                now = time.time()
                for id_, reference in rows:
                    if id_ not in self.ids:
                        self.ids.add(id_)
                        self.seen.setdefault(str(reference), now)
                        self.top = max(self.top, id_)
                self._advance(now)
                time.sleep(self.INTERVAL)
        except BaseException as error:  # reported by the stage, which would otherwise wait for ever
            self.error = error

    def _advance(self, now: float) -> None:
        for id_ in range(self.cursor + 1, self.top + 1):
            if id_ not in self.ids:
                self.holes.setdefault(id_, now)
        while self.cursor < self.top:
            following = self.cursor + 1
            if following in self.ids:
                self.ids.discard(following)
            elif now - self.holes[following] < self.HOLE_SECONDS:
                return
            else:
                del self.holes[following]
            self.cursor = following


def latency_stage(ctx: Context, bank: Bank, rate: float, seconds: float) -> None:
    """Send single payments at `rate` for `seconds`, each timed from its send to its recorded outcome."""
    count = max(20, int(rate * seconds))
    prefix = "latency-"
    messages = single_messages(bank.accounts, count, prefix, seed=2)
    sent: dict[str, float] = {}
    app = plain_producer(ctx.broker.url)
    with project_worker(ctx, "latency") as worker:
        base = top_id(ctx.db)
        watcher = Visibility(ctx.db, base)
        watcher.start()
        try:
            with app.producer_or_acquire() as producer:
                start = time.monotonic()
                for n, (task, kwargs) in enumerate(messages):
                    delay = start + n / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    sent[kwargs["reference"]] = time.time()
                    app.send_task(task, kwargs=kwargs, queue=QUEUE, producer=producer)
                achieved = count / (time.monotonic() - start)
            deadline = time.monotonic() + drain_timeout(count)
            while len(watcher.seen) < count:
                worker.check_alive()
                if watcher.error is not None:
                    raise BenchError(f"latency: polling the outcomes failed: {watcher.error!r}")
                if time.monotonic() > deadline:
                    raise BenchError(f"latency: {len(watcher.seen)} of {count} outcomes seen\n{worker.tail()}")
                time.sleep(POLL)
        finally:
            watcher.stop.set()
            watcher.join(10)
            app.close()
    recorded = ctx.db.rows(
        "SELECT reference, extract(epoch FROM created_at) FROM transactions WHERE starts_with(reference, :prefix)",
        prefix=prefix,
    )
    to_recorded = [(float(row[1]) - ctx.clock_offset - sent[str(row[0])]) * 1000 for row in recorded]
    to_visible = [(watcher.seen[reference] - sent[reference]) * 1000 for reference in sent]
    trailing = max(watcher.seen.values()) - max(sent.values())
    report = ctx.report
    note = f"{count} payments at {achieved:,.0f}/s (asked {rate:,.0f}/s, half the single path's peak)"
    report.add("latency", "p50 enqueue → recorded outcome", percentile(to_recorded, 0.5), "ms", note=note)
    report.add(
        "latency",
        "p99 enqueue → recorded outcome",
        percentile(to_recorded, 0.99),
        "ms",
        target=below(50, "ms"),
        headline=True,
        note=f"transactions.created_at (its transaction's start) minus time.time() at send, on the database's clock"
        f" (offset {ctx.clock_offset * 1000:+.1f} ms)",
    )
    report.add("latency", "p50 enqueue → outcome visible to a reader", percentile(to_visible, 0.5), "ms")
    report.add(
        "latency",
        "p99 enqueue → outcome visible to a reader",
        percentile(to_visible, 0.99),
        "ms",
        target=below(50, "ms"),
        note=f"committed and read back, polled every {Visibility.INTERVAL * 1000:g} ms",
    )
    report.add(
        "latency",
        "last outcome after the last send",
        trailing,
        "s",
        note="a queue that grew while sending (the worker fell behind) shows here",
    )
    check_stage(ctx, "latency", prefix, base, count)


# Memory -----------------------------------------------------------------------------------------------------------


def memory_stage(ctx: Context, bank: Bank, small_rows: int, large: FileRun) -> None:
    """Peak RSS of `submit file` on a small file against the `--rows` one; the worker's RSS over the file run."""
    path = generate(ctx, ctx.workdir / "small.csv", small_rows, 3, bank.accounts)
    small = submit_file(ctx, "memory", path, small_rows, "batch-3-")
    report = ctx.report
    report.add("memory", f"submit peak RSS at {small_rows:,} rows", small.submit.max_rss / MIB, "MiB")
    report.add(
        "memory",
        f"submit peak RSS at {large.rows:,} rows",
        large.submit.max_rss / MIB,
        "MiB",
        reference=(f"{small_rows:,} rows", small.submit.max_rss / MIB),
        target=flat(1.2),
        headline=True,
    )
    growth = (large.worker_rss_end - large.worker_rss_start) / large.worker_rss_start * 100
    report.add(
        "memory",
        "worker RSS growth over the file run",
        growth,
        "%",
        note=f"{large.worker_rss_start / MIB:.0f} → {large.worker_rss_end / MIB:.0f} MiB (main + pool)",
    )
