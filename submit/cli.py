"""The `submit` command: enqueue payment requests for the workers and read their outcomes."""

from __future__ import annotations

import csv
import functools
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
import kombu.exceptions
from kombu.utils.url import maybe_sanitize_url
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from processor.domain.errors import InvalidValue
from processor.domain.payments import Outcome, OutcomeStatus
from processor.logs import configure_logging
from processor.messages import Deposit, PaymentMessage, Transfer, Withdrawal
from processor.terminal import P, R, console, emit, fail, json_option, reports_errors, settings
from processor.views import outcome_json
from submit.batch import FileRun, Summary, submit_file
from submit.client import Client
from submit.files import FileFormat, UnreadableFile
from submit.generate import Accounts, demo_accounts, given_accounts, write_sample


def broker_failure(error: Exception) -> str:
    return (
        f"cannot send to the broker at {maybe_sanitize_url(settings().celery_broker_url)} (CELERY_BROKER_URL): {error}"
    )


def reports_broker_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A broker that cannot be reached is one line on stderr and exit code 1, like every other failure."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except kombu.exceptions.OperationalError as error:
            fail(broker_failure(error))

    return wrapper


def outcome_table(outcome: Outcome) -> Table:
    table = Table(show_header=False, box=None)
    data = outcome_json(outcome)
    for key in ("reference", "status", "reason", "type", "amount", "currency", "source", "destination"):
        if data[key] is not None:
            table.add_row(key, str(data[key]))
    for error in data["errors"]:
        table.add_row("error", error)
    for conflict in data["conflicts"]:
        at = f" at {conflict['at']}" if conflict["at"] else ""
        differing = ", ".join(f"{name} {conflict['payload'].get(name)}" for name in conflict["fields"])
        table.add_row("conflict", f"an attempt{at} with {differing}: not applied")
    return table


def show(outcome: Outcome, as_json: bool) -> None:
    emit(as_json, outcome_json(outcome), lambda: console.print(outcome_table(outcome)))


def send_options(command: Callable[P, R]) -> Callable[P, R]:
    options: list[Callable[[Any], Any]] = [
        click.option("--amount", required=True, help="A decimal amount such as 125.50."),
        click.option("--currency", default=None, help="ISO 4217 code [default: PROCESSOR_DEFAULT_CURRENCY or GBP]."),
        click.option("--reference", default=None, help="Your idempotency key [default: a new one]."),
        click.option("--description", default=None, help="Free text kept with the payment."),
        click.option("--wait", is_flag=True, help="Wait for the outcome and show it."),
        click.option("--timeout", default=30.0, show_default=True, help="Seconds --wait waits for an outcome."),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


MESSAGES_BY_VERB: dict[str, type[PaymentMessage]] = {"deposit": Deposit, "withdraw": Withdrawal, "transfer": Transfer}


def send(verb: str, accounts: dict[str, str], wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    client = Client()
    message = client.message(MESSAGES_BY_VERB[verb], **fields, **accounts)
    try:
        client.send_message(message)
    except kombu.exceptions.OperationalError as error:
        fail(
            f"{broker_failure(error)}. To try again, send it with --reference {message.reference}: "
            "if it did go, it applies once"
        )
    if not wait:
        emit(
            as_json,
            {"reference": message.reference, "status": OutcomeStatus.PENDING.value},
            lambda: console.print(f"enqueued {message.reference}"),
        )
        return
    outcome = client.wait(message.reference, timeout)
    show(outcome, as_json)
    if outcome.status is OutcomeStatus.PENDING:
        fail(
            f"no outcome for {message.reference} after {timeout:g} s: is a worker running? (celery -A processor worker)"
        )
    if outcome.identity() != message.request().identity():
        # The reference was used before, for another payment: what is shown is that one's outcome, and this
        # request will be recorded as a conflict with no effect.
        fail(f"{message.reference} was already used for another payment (shown above); this one is not applied")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Send payment requests to the ABC Bank processor and read their outcomes.

    A request is validated before it is sent: a mistyped account number or a malformed amount is refused here.
    The reference is the idempotency key: sending the same reference again never applies a payment twice.
    """
    config = settings()
    configure_logging(config.log_format, config.log_level, default_level="WARNING")


@cli.command()
@click.option("--account", required=True, help="The account to credit.")
@send_options
@reports_errors
def deposit(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a deposit into an account."""
    send("deposit", {"account": account}, wait, timeout, as_json, **fields)


@cli.command()
@click.option("--account", required=True, help="The account to debit.")
@send_options
@reports_errors
def withdraw(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a withdrawal from an account."""
    send("withdraw", {"account": account}, wait, timeout, as_json, **fields)


@cli.command()
@click.option("--source", required=True, help="The account to debit.")
@click.option("--destination", required=True, help="The account to credit.")
@send_options
@reports_errors
def transfer(source: str, destination: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a transfer between two accounts."""
    send("transfer", {"source": source, "destination": destination}, wait, timeout, as_json, **fields)


@cli.command()
@click.argument("reference")
@json_option
@reports_errors
def status(reference: str, as_json: bool) -> None:
    """Show the outcome of a reference (applied, rejected with its reason, or pending) and any conflicts."""
    show(Client().status(reference), as_json)


class PlainProgress:
    """Progress for logs and pipes: a line now and then on stderr, never a redrawn bar."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last = 0.0

    def update(self, stage: str, done: int, total: int | None, counts: dict[str, int]) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.last < self.every and not finished:
            return
        self.last = now
        of = "" if total is None else f" of {total}"
        verb = "read" if stage == "read" else "have an outcome"
        details = ", ".join(f"{name} {count}" for name, count in counts.items())
        click.echo(f"{done}{of} rows {verb} ({details})", err=True)


class BarProgress:
    """Progress on a terminal: a Rich bar per stage, on stderr so that --json output stays clean."""

    def __init__(self) -> None:
        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.stop()

    def update(self, stage: str, done: int, total: int | None, counts: dict[str, int]) -> None:
        text = "  ".join(f"{name} {count}" for name, count in counts.items())
        if stage not in self.tasks:
            label = "reading and sending" if stage == "read" else "waiting for outcomes"
            self.tasks[stage] = self.bar.add_task(label, total=total, counts=text)
        self.bar.update(self.tasks[stage], completed=done, total=total, counts=text)


def summary_table(summary: Summary) -> Table:
    table = Table(show_header=False, box=None, title="summary")
    rows: list[tuple[str, int | str]] = [
        ("rows", summary.rows),
        ("valid", summary.valid),
        ("invalid", summary.invalid),
        ("duplicates (sent once)", summary.duplicates),
        ("enqueued", summary.enqueued),
        ("already recorded (not sent again)", summary.already_recorded),
        ("re-sent after --resend-after", summary.resent),
        ("applied", summary.applied),
        ("rejected", summary.rejected),
        *((f"  {reason}", count) for reason, count in summary.rejected_by_reason.items()),
        ("pending", summary.pending),
        ("conflicts (another payment already has the reference)", summary.conflicts),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def errors_table(summary: Summary, limit: int = 50) -> Table:
    table = Table("line", "field", "error", title=f"invalid rows ({summary.invalid})")
    for error in summary.errors[:limit]:
        table.add_row(str(error.line), error.field, error.message)
    if len(summary.errors) > limit:
        table.add_row("…", "", f"{len(summary.errors) - limit} more: see --outcomes or --json")
    return table


def write_outcomes(path: Path) -> Callable[[FileRun], None]:
    def write(run: FileRun) -> None:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, ["line", "reference", "result", "reason", "duplicate_of_line", "error"])
            writer.writeheader()
            writer.writerows(run.outcome_lines())

    return write


@cli.command("file")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "file_format", type=click.Choice([f.value for f in FileFormat]), help="[default: by extension]"
)
@click.option("--dry-run", is_flag=True, help="Validate every row; send nothing.")
@click.option("--wait", is_flag=True, help="Wait until every sent row has an outcome, or --timeout passes.")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(min=0), help="Seconds --wait waits.")
@click.option(
    "--resend-after",
    type=click.FloatRange(min=1),
    default=None,
    help="With --wait: send again (same reference, so safely) a row with no outcome after this many seconds.",
)
@click.option(
    "--outcomes", "outcomes_path", type=click.Path(path_type=Path, dir_okay=False), help="Write one CSV line per row."
)
@json_option
@reports_errors
@reports_broker_errors
def file_(
    path: Path,
    file_format: str | None,
    dry_run: bool,
    wait: bool,
    timeout: float,
    resend_after: float | None,
    outcomes_path: Path | None,
    as_json: bool,
) -> None:
    """Validate a payment file (CSV with a header, or JSON Lines) and enqueue its valid rows.

    Exit 0 when every row is valid and, with --wait, every sent row has an outcome; 1 otherwise; 2 for a usage
    error or a file that cannot be read. Running the same file again applies nothing twice.
    """
    if resend_after is not None and not wait:
        raise click.UsageError("--resend-after needs --wait")
    if outcomes_path is not None:
        # Found out now, not after the whole file has been sent and waited for.
        try:
            outcomes_path.open("w").close()
        except OSError as error:
            click.echo(f"error: cannot write --outcomes {outcomes_path}: {error.strerror or error}", err=True)
            sys.exit(2)
    try:
        chosen = FileFormat(file_format) if file_format else FileFormat.of(path)
        with BarProgress() if console.is_terminal and not as_json else nullcontext(PlainProgress()) as progress:
            summary = submit_file(
                path,
                chosen,
                None if dry_run else Client(),
                progress,
                wait=wait,
                timeout=timeout,
                resend_after=resend_after,
                on_finish=None if outcomes_path is None else write_outcomes(outcomes_path),
            )
    except UnreadableFile as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)

    def render() -> None:
        console.print(summary_table(summary))
        if summary.errors:
            console.print(errors_table(summary))

    emit(as_json, summary.as_json(), render)
    if not summary.ok:
        sys.exit(1)


def _accounts(ctx: click.Context, param: click.Parameter, numbers: tuple[str, ...]) -> Accounts | None:
    try:
        return given_accounts(numbers) if numbers else None
    except InvalidValue as error:
        raise click.BadParameter(error.message) from None


@cli.command()
@click.option("--rows", required=True, type=click.IntRange(min=1), help="How many rows, the bad ones included.")
@click.option(
    "--out",
    "out_path",
    default="-",
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="The file to write; - for stdout.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice([f.value for f in FileFormat]),
    help="[default: by the extension of --out; csv on stdout]",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    callback=_accounts,
    help="An account to pay from and into; repeat for more."
    " [default: the active accounts of the demo's customers 100001 and 100002, read from DATABASE_URL]",
)
@click.option(
    "--seed",
    default=1,
    show_default=True,
    type=click.IntRange(0, 999_999_999),
    help="Another seed gives other payments, under other references (batch-SEED-N).",
)
@click.option(
    "--bad-rows",
    type=click.IntRange(min=0),
    help="Deliberately bad rows, spread through the file, each wrong in another way. [default: 5, at most --rows]",
)
@json_option
@reports_errors
def generate(
    rows: int,
    out_path: Path,
    file_format: str | None,
    accounts: Accounts | None,
    seed: int,
    bad_rows: int | None,
    as_json: bool,
) -> None:
    """Write a realistic sample payment file; the lines of its deliberately bad rows are listed on stderr.

    A seed always writes the same payments under the same references: submitting them again applies nothing twice.
    """
    to_stdout = str(out_path) == "-"
    if bad_rows is None:
        bad_rows = min(5, rows)
    elif bad_rows > rows:
        raise click.BadParameter(f"{bad_rows} is more than --rows {rows}", param_hint="--bad-rows")
    if as_json and to_stdout:
        raise click.UsageError("--json prints a summary on stdout, where the file would go: give --out a path")
    try:
        chosen = FileFormat(file_format) if file_format else FileFormat.CSV if to_stdout else FileFormat.of(out_path)
    except UnreadableFile as error:
        raise click.BadParameter(str(error), param_hint="--out") from None
    payees = accounts or demo_accounts()
    try:
        with nullcontext(sys.stdout) if to_stdout else out_path.open("w", newline="", encoding="utf-8") as out:
            bad = write_sample(out, chosen, payees, rows, seed, bad_rows)
    except BrokenPipeError:
        # The reader of a pipe stopped early (| head): not an error, and nothing more to say on stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as error:
        fail(f"cannot write {out_path}: {error.strerror or error}")
    where = "stdout" if to_stdout else str(out_path)
    bad_json = [{"line": row.line, "field": row.field, "problem": str(row.flaw)} for row in bad]
    summary = {"path": where, "format": chosen.value, "rows": rows, "seed": seed, "bad_rows": bad_json}

    def render() -> None:
        count = len(set(payees.destinations + payees.sources))
        accounts_ = f"{count} account" + ("" if count == 1 else "s")
        click.echo(f"wrote {rows} rows to {where} ({chosen.value}, seed {seed}, {accounts_})", err=True)
        if bad:
            click.echo(
                f"{len(bad)} deliberately bad rows, which 'submit file' reports as invalid and does not send:", err=True
            )
            for row in bad:
                click.echo(f"  line {row.line}: {row.field}: {row.flaw}", err=True)

    emit(as_json, summary, render)


def main() -> None:
    cli(prog_name="submit")
