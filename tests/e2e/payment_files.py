"""Payment files for end-to-end tests of `submit file`, the installed command run as a user runs it, and the checks."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import sqlalchemy

from processor.db.engine import get_engine
from processor.domain.accounts import Account
from processor.domain.requests import PaymentRequest
from processor.messages import QUEUE
from processor.services.accounts import get_account
from submit.files import COLUMNS
from tests.builders import UowFactory

SUBMIT = str(Path(sys.executable).with_name("submit"))
# Where kombu's Redis transport keeps what a worker took from the queue and has not yet acknowledged.
UNACKED = "unacked"
CLAIM_KEY = "abcbank:test-claim"


def cells(payment: PaymentRequest) -> list[str]:
    """A payment as the cells of a file row; the amount as it was written (`12` stays `12`)."""
    return [
        payment.reference,
        payment.type.value,
        payment.source or "",
        payment.destination or "",
        str(payment.amount),
        payment.currency,
        payment.description or "",
    ]


def file_row(payment: PaymentRequest) -> dict[str, str]:
    """A payment as a JSON Lines row."""
    return dict(zip(COLUMNS, cells(payment), strict=True))


# A line of a file: a payment, the cells of a CSV row as they are, or raw bytes (which end with their own newline).
Line = PaymentRequest | Sequence[str] | bytes


def write_csv(path: Path, lines: Iterable[Line], header: Sequence[str] = COLUMNS) -> Path:
    """A CSV payment file: the header on line 1, then one line per item, so item i is on line i + 2."""
    with path.open("wb") as out:
        out.write((",".join(header) + "\n").encode())
        for line in lines:
            if isinstance(line, bytes):
                out.write(line)
                continue
            row = cells(line) if isinstance(line, PaymentRequest) else line
            out.write(_csv_line(row).encode())
    return path


def _csv_line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def write_jsonl(path: Path, lines: Iterable[PaymentRequest | Mapping[str, object] | bytes]) -> Path:
    """A JSON Lines payment file: item i is on line i + 1."""
    with path.open("wb") as out:
        for line in lines:
            if isinstance(line, bytes):
                out.write(line)
            else:
                out.write((json.dumps(file_row(line) if isinstance(line, PaymentRequest) else line) + "\n").encode())
    return path


def environment(database_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    """What a user sets: the database and the broker. TMPDIR keeps a killed run's scratch files in the test's."""
    return {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": broker_url, "TMPDIR": str(tmp_path)}


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        """The --json summary on stdout."""
        data = json.loads(self.stdout)
        assert isinstance(data, dict), self.stdout
        return data


class SubmitProcess:
    """`submit ARGS` running in the background; its output goes to files, so a long run cannot fill a pipe."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], directory: Path) -> None:
        self.stdout_path = directory / f"submit-{time.monotonic_ns()}.out"
        self.stderr_path = self.stdout_path.with_suffix(".err")
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen([SUBMIT, *args], env=dict(env), stdout=stdout, stderr=stderr)

    def finish(self, timeout: float) -> Finished:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"submit still running after {timeout} s:\n{self.stderr_path.read_text()}") from None
        return Finished(code, self.stdout_path.read_text(), self.stderr_path.read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def submit(args: Sequence[str], env: Mapping[str, str], timeout: float = 60.0) -> Finished:
    """Run `submit ARGS` to its end."""
    done = subprocess.run([SUBMIT, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False)
    return Finished(done.returncode, done.stdout, done.stderr)


def read_outcomes(path: Path) -> list[dict[str, str]]:
    """The --outcomes file, one dict per line."""
    with path.open(newline="", encoding="utf-8") as lines:
        return list(csv.DictReader(lines))


def expected_balances(accounts: Iterable[Account], applied: Iterable[PaymentRequest]) -> dict[str, Decimal]:
    """Each account's balance once the payments are applied, each once."""
    balances = {account.number: account.balance for account in accounts}
    for payment in applied:
        if payment.source:
            balances[payment.source] -= Decimal(payment.amount)
        if payment.destination:
            balances[payment.destination] += Decimal(payment.amount)
    return balances


def balances(make_uow: UowFactory, accounts: Iterable[Account]) -> dict[str, Decimal]:
    return {account.number: get_account(make_uow(), account.number).balance for account in accounts}


def recorded(database_url: str, prefix: str) -> int:
    """How many transactions rows have a reference starting with `prefix`."""
    with get_engine(database_url).connect() as connection:
        query = sqlalchemy.text("SELECT count(*) FROM transactions WHERE starts_with(reference, :prefix)")
        return int(connection.execute(query, {"prefix": prefix}).scalar_one())


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout} s: {what}")
        time.sleep(0.05)


def broker_is_idle(broker: redis.Redis) -> bool:
    """Nothing waits on the queue and nothing a worker took is unacknowledged."""
    return int(broker.llen(QUEUE)) == 0 and int(broker.hlen(UNACKED)) == 0


def flush_broker(broker: redis.Redis) -> None:
    """Lose every message, as a Redis restarted without persistence would, but keep this run's claim on the database.

    FLUSHDB and the claim go in one MULTI, so another test run never sees the database empty and takes it.
    """
    claim = broker.get(CLAIM_KEY)
    assert claim is not None, "the broker_url fixture's claim key is gone: is this the test's Redis database?"
    with broker.pipeline(transaction=True) as pipe:
        pipe.flushdb()
        pipe.set(CLAIM_KEY, claim, ex=3600)
        pipe.execute()
