"""`submit file`: validate a payment file, enqueue its valid rows, and report what became of each."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import click
from rich.table import Table

from processor.messages import BATCH_MAX
from processor.terminal import Seconds, console, emit, json_option, reports_errors
from submit.batch import FileRun, Summary, submit_file
from submit.cli.broker import reports_broker_errors
from submit.client import Client
from submit.files import FileFormat, UnreadableFile
from submit.progress import BarProgress, PlainProgress


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


@click.command("file")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "file_format", type=click.Choice([f.value for f in FileFormat]), help="[default: by extension]"
)
@click.option("--dry-run", is_flag=True, help="Validate every row; send nothing.")
@click.option("--wait", is_flag=True, help="Wait until every sent row has an outcome, or --timeout passes.")
@click.option("--timeout", default=600.0, show_default=True, type=Seconds(), help="Seconds --wait waits.")
@click.option(
    "--resend-after",
    type=Seconds(min=1),
    default=None,
    help="With --wait: send again (same reference, so safely) a row with no outcome after this many seconds.",
)
@click.option(
    "--outcomes", "outcomes_path", type=click.Path(path_type=Path, dir_okay=False), help="Write one CSV line per row."
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, BATCH_MAX),
    default=BATCH_MAX,
    show_default=True,
    help="Payments per payments.batch message, each batch one database transaction; 1 sends each row alone.",
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
    batch_size: int,
    as_json: bool,
) -> None:
    """Validate a payment file (CSV with a header, or JSON Lines) and enqueue its valid rows.

    Exit 0 when every row is valid and, with --wait, every sent row has an outcome; 1 otherwise; 2 for a usage
    error or a file that cannot be read; 69 when the broker or database cannot be reached. Running the same file
    again applies nothing twice.

    \b
    Example:
      submit file payments.csv --wait --resend-after 60 --outcomes outcomes.csv
    """
    if resend_after is not None and not wait:
        raise click.UsageError("--resend-after needs --wait")
    if outcomes_path is not None:
        if outcomes_path.resolve() == path.resolve() or (
            outcomes_path.exists() and path.exists() and os.path.samefile(outcomes_path, path)
        ):
            raise click.UsageError("--outcomes names the payment file itself; it would be overwritten")
        # Found out now, not after the whole file has been sent and waited for; opened to append, so that
        # checking truncates nothing.
        try:
            outcomes_path.open("a").close()
        except OSError as error:
            click.echo(f"error: cannot write --outcomes {outcomes_path}: {error.strerror or error}", err=True)
            sys.exit(2)
    try:
        chosen_format = FileFormat(file_format) if file_format else FileFormat.of(path)
        with BarProgress() if console.is_terminal and not as_json else nullcontext(PlainProgress()) as progress:
            summary = submit_file(
                path,
                chosen_format,
                None if dry_run else Client(),
                progress,
                wait=wait,
                timeout=timeout,
                resend_after=resend_after,
                on_finish=None if outcomes_path is None else write_outcomes(outcomes_path),
                batch_size=batch_size,
            )
    except UnreadableFile as error:
        # A ProcessorError, caught here first: the contract gives an unreadable file exit code 2, not 1.
        click.echo(f"error: {error}", err=True)
        sys.exit(2)

    def render() -> None:
        console.print(summary_table(summary))
        if summary.errors:
            console.print(errors_table(summary))

    emit(as_json, summary.as_json(), render)
    if not summary.ok:
        sys.exit(1)
