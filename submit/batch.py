"""Submitting a payment file: validate every row, send each valid payment once, wait for outcomes, report.

What the run knows of each row lives in a temporary SQLite file, not in memory, so that a file of millions of
rows is checked for repeated references, tracked and reported in the same memory as a small one.
Sending is safe to repeat: a reference has one effect however often it arrives, so a run that is interrupted
is finished by running the same file again, and rows still without an outcome are simply sent again.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.domain.errors import InvalidRequest
from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.domain.requests import fingerprint
from processor.messages import BATCH_MAX, MESSAGES, PaymentMessage, from_fields
from submit.client import Client
from submit.files import FileFormat, Row, RowError, read_rows
from submit.progress import Progress

CHUNK = 500  # rows per outcome query while waiting, and per resend
POLL_ROWS_PER_SECOND = 20_000  # waiting references per second of pause between two polls
BATCHES_PER_BURST = 4  # batches sent together after one outcome query, grouped so they share few accounts


@dataclass
class Summary:
    """What happened to a file's rows (docs/architecture.md, "Output shapes": file summary)."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    enqueued: int = 0
    already_recorded: int = 0
    resent: int = 0
    applied: int = 0
    rejected: int = 0
    pending: int = 0
    conflicts: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    waited: bool = False

    @property
    def ok(self) -> bool:
        """Every row valid, none whose reference another payment has, and, when waited for, every outcome in."""
        # A conflict is a row that was not applied and never will be under its reference: someone must look.
        return self.invalid == 0 and self.conflicts == 0 and not (self.waited and self.pending)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "enqueued": self.enqueued,
            "already_recorded": self.already_recorded,
            "resent": self.resent,
            "applied": self.applied,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "pending": self.pending,
            "conflicts": self.conflicts,
            "errors": [{"line": e.line, "field": e.field, "message": e.message} for e in self.errors],
        }


_SCHEMA = """
CREATE TABLE payments (
    reference TEXT PRIMARY KEY, line INTEGER NOT NULL, identity TEXT NOT NULL, task TEXT NOT NULL,
    kwargs TEXT NOT NULL, sent_at REAL, status TEXT, reason TEXT, conflict INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE rows (line INTEGER PRIMARY KEY, reference TEXT, kind TEXT NOT NULL);
CREATE TABLE errors (line INTEGER NOT NULL, field TEXT NOT NULL, message TEXT NOT NULL);
"""


class FileRun:
    """One submission of one file."""

    def __init__(self, client: Client | None, progress: Progress, batch_size: int = BATCH_MAX) -> None:
        self.client = client
        self.progress = progress
        self.batch_size = batch_size
        self.burst_size = max(CHUNK, batch_size * BATCHES_PER_BURST)
        self.summary = Summary()
        self.last_activity = time.time()  # when an outcome last arrived, or a payment was last sent
        self._directory = tempfile.TemporaryDirectory(prefix="submit-file-")
        self.db = sqlite3.connect(Path(self._directory.name) / "run.sqlite3", isolation_level=None)
        self.db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)

    def close(self) -> None:
        self.db.close()
        self._directory.cleanup()

    def read(self, path: Path, file_format: FileFormat, send: bool) -> None:
        """Validate every row; with `send`, enqueue each new valid payment once, in bursts, as reading goes on."""
        burst: list[PaymentMessage] = []
        self.db.execute("BEGIN")
        for item in read_rows(path, file_format):
            self.summary.rows += 1
            if isinstance(item, RowError):
                self._invalid(item.line, None, [item])
            else:
                message = self._check(item)
                if message is not None and send:
                    burst.append(message)
            if send and len(burst) >= self.burst_size:
                self._send_new(burst)
                burst = []
            if self.summary.rows % CHUNK == 0:
                self.progress.update("read", self.summary.rows, None, self._counts())
        if send and burst:
            self._send_new(burst)
        self.db.execute("COMMIT")
        self.progress.update("read", self.summary.rows, self.summary.rows, self._counts())

    def _check(self, row: Row) -> PaymentMessage | None:
        try:
            message = from_fields(row.fields)
        except InvalidRequest as error:
            self._invalid(row.line, error.reference, [RowError(row.line, e.field, e.message) for e in error.errors])
            return None
        identity = fingerprint(message.request().identity())
        earlier = self.db.execute(
            "SELECT line, identity FROM payments WHERE reference = ?", (message.reference,)
        ).fetchone()
        if earlier is None:
            self.db.execute(
                "INSERT INTO payments (reference, line, identity, task, kwargs) VALUES (?, ?, ?, ?, ?)",
                (message.reference, row.line, identity, message.task, json.dumps(message.kwargs())),
            )
            self.db.execute("INSERT INTO rows VALUES (?, ?, 'valid')", (row.line, message.reference))
            self.summary.valid += 1
            return message
        if earlier[1] == identity:
            self.db.execute("INSERT INTO rows VALUES (?, ?, 'duplicate')", (row.line, message.reference))
            self.summary.duplicates += 1
            return None
        problem = f"{message.reference} is already used on line {earlier[0]} with another payment; this row is not sent"
        self._invalid(row.line, message.reference, [RowError(row.line, "reference", problem)])
        return None

    def _invalid(self, line: int, reference: str | None, errors: Sequence[RowError]) -> None:
        self.summary.invalid += 1
        self.db.execute("INSERT INTO rows VALUES (?, ?, 'invalid')", (line, reference))
        self.db.executemany("INSERT INTO errors VALUES (?, ?, ?)", [(e.line, e.field, e.message) for e in errors])

    def _send_new(self, burst: list[PaymentMessage]) -> None:
        """Send the payments of a burst that have no outcome yet; a rerun of a file skips what is recorded."""
        assert self.client is not None
        outcomes = self.client.outcomes([message.reference for message in burst])
        pending: list[PaymentMessage] = []
        for message in burst:
            outcome = outcomes[message.reference]
            if outcome.status is OutcomeStatus.PENDING:
                pending.append(message)
            else:
                self._record(message.reference, outcome)
                self.summary.already_recorded += 1
        self._send(pending)
        self.summary.enqueued += len(pending)

    def _send(self, messages: Sequence[PaymentMessage]) -> None:
        """Enqueue messages, as payments.batch messages of up to `batch_size` each (1: each on its own)."""
        assert self.client is not None
        if not messages:
            return
        now = time.time()
        with self.client.producer() as producer:
            if self.batch_size == 1:
                for message in messages:
                    self.client.send_message(message, producer)
            else:
                for batch in group_by_account(messages, self.batch_size):
                    self.client.send_batch(batch, producer)
        self.db.executemany(
            "UPDATE payments SET sent_at = ? WHERE reference = ?", [(now, m.reference) for m in messages]
        )
        self.last_activity = now

    def wait(self, timeout: float, resend_after: float | None) -> None:
        """Poll outcomes until every sent payment has one or `timeout` passes, re-sending the slow ones."""
        self.summary.waited = True
        deadline = time.monotonic() + timeout
        while True:
            self._collect()
            waiting = self._waiting_count()
            total = self.summary.valid
            self.progress.update("wait", total - waiting, total, self._counts())
            if waiting == 0 or time.monotonic() >= deadline:
                return
            if resend_after is not None:
                self._resend(resend_after)
            time.sleep(min(poll_interval(waiting), max(0.0, deadline - time.monotonic())))

    def _collect(self) -> None:
        assert self.client is not None
        found = 0
        for chunk in self._waiting(time.time()):
            for reference, outcome in self.client.outcomes([reference for reference, _, _ in chunk]).items():
                if outcome.status is not OutcomeStatus.PENDING:
                    self._record(reference, outcome)
                    found += 1
        if found:
            self.last_activity = time.time()

    def _resend(self, resend_after: float) -> None:
        """Send again, with the same reference (so at most one applies), what has waited `resend_after` seconds."""
        assert self.client is not None
        now = time.time()
        if now - self.last_activity < resend_after:
            # Outcomes are still arriving: the rest are queued behind them, not lost. Re-sending them now would
            # only lengthen the queue with duplicates.
            return
        for chunk in self._waiting(now - resend_after):
            self._send([MESSAGES[task].model_validate(json.loads(kwargs)) for _, task, kwargs in chunk])
            self.summary.resent += len(chunk)

    def _waiting(self, sent_before: float) -> Iterator[list[tuple[str, str, str]]]:
        """The payments with no outcome yet, sent before a moment, a chunk at a time (never all in memory)."""
        after = ""
        while chunk := self.db.execute(
            "SELECT reference, task, kwargs FROM payments WHERE status IS NULL AND sent_at <= ? AND reference > ?"
            " ORDER BY reference LIMIT ?",
            (sent_before, after, CHUNK),
        ).fetchall():
            yield chunk
            after = chunk[-1][0]

    def _record(self, reference: str, outcome: Outcome) -> None:
        identity = fingerprint(outcome.identity())
        self.db.execute(
            "UPDATE payments SET status = ?, reason = ?, conflict = (identity <> ?) WHERE reference = ?",
            (outcome.status.value, None if outcome.reason is None else outcome.reason.value, identity, reference),
        )

    def _waiting_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM payments WHERE status IS NULL").fetchone()[0])

    def _counts(self) -> dict[str, int]:
        statuses = dict(self.db.execute("SELECT coalesce(status, 'pending'), count(*) FROM payments GROUP BY 1"))
        if self.client is None:  # a dry run: nothing is sent, so nothing is pending
            return {"invalid": self.summary.invalid, "valid": self.summary.valid}
        return {
            "invalid": self.summary.invalid,
            "applied": statuses.get("applied", 0),
            "rejected": statuses.get("rejected", 0),
            "pending": statuses.get("pending", 0),
        }

    def finish(self) -> Summary:
        """The summary, outcomes counted from what the run has collected."""
        summary = self.summary
        counts = self._counts()
        summary.applied, summary.rejected = counts.get("applied", 0), counts.get("rejected", 0)
        summary.pending = counts.get("pending", 0)
        summary.rejected_by_reason = dict(
            self.db.execute(
                "SELECT reason, count(*) FROM payments WHERE status = 'rejected' GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        summary.conflicts = int(self.db.execute("SELECT count(*) FROM payments WHERE conflict").fetchone()[0])
        summary.errors = [RowError(*row) for row in self.db.execute("SELECT * FROM errors ORDER BY line, rowid")]
        return summary

    def outcome_lines(self) -> Iterator[dict[str, object]]:
        """One line per input row, in file order: its outcome, or why it was not sent."""
        query = """
            SELECT r.line, r.reference, r.kind, p.status, p.reason, p.conflict, p.line,
                   (SELECT group_concat(field || ': ' || message, '; ') FROM errors e WHERE e.line = r.line)
            FROM rows r LEFT JOIN payments p ON p.reference = r.reference AND r.kind <> 'invalid'
            ORDER BY r.line
        """
        for line, reference, kind, status, reason, conflict, first_line, error in self.db.execute(query):
            if kind == "invalid":
                result = "invalid"
            elif conflict:
                result = "conflict"
            else:
                result = status or ("pending" if self.summary.waited or self.client else "not sent")
            yield {
                "line": line,
                "reference": reference or "",
                "result": result,
                "reason": reason or "",
                "duplicate_of_line": first_line if kind == "duplicate" else "",
                "error": error or "",
            }


def poll_interval(waiting: int) -> float:
    """Seconds between polls for outcomes: a poll reads every waiting reference, so it is rarer while many wait.

    The last outcomes of a file are then seen within a fifth of a second, not a whole second after they commit.
    """
    return min(1.0, max(0.2, waiting / POLL_ROWS_PER_SECOND))


def group_by_account(messages: Sequence[PaymentMessage], size: int) -> list[list[PaymentMessage]]:
    """Batches of at most `size`, each payment put by its paying account, so that batches share few accounts.

    Batches sent together are applied side by side by different worker processes; one that locks no account of
    another's need not wait for it. File order is kept within each batch.
    """
    count = math.ceil(len(messages) / size)
    groups: list[list[PaymentMessage]] = [[] for _ in range(count)]
    for message in messages:
        request = message.request()
        payer = request.source or request.destination or ""
        groups[zlib.crc32(payer.encode()) % count].append(message)
    return [group[start : start + size] for group in groups for start in range(0, len(group), size)]


def submit_file(
    path: Path,
    file_format: FileFormat,
    client: Client | None,
    progress: Progress,
    wait: bool = False,
    timeout: float = 600.0,
    resend_after: float | None = None,
    on_finish: Callable[[FileRun], None] | None = None,
    batch_size: int = BATCH_MAX,
) -> Summary:
    """Validate, send (unless `client` is None: a dry run) and, with `wait`, wait for the outcomes of a file."""
    run = FileRun(client, progress, batch_size)
    try:
        run.read(path, file_format, send=client is not None)
        if wait and client is not None:
            run.wait(timeout, resend_after)
        summary = run.finish()
        if on_finish is not None:
            on_finish(run)
        return summary
    finally:
        run.close()
