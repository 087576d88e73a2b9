"""`submit generate`: write a sample payment file, with a few deliberately bad rows, for trying `submit file`."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from processor.domain.errors import InvalidValue
from processor.terminal import emit, fail, json_option, reports_errors
from submit.files import FileFormat, UnreadableFile
from submit.generate import Payees, demo_payees, given_payees, write_sample


def _parse_payees(ctx: click.Context, param: click.Parameter, numbers: tuple[str, ...]) -> Payees | None:
    try:
        return given_payees(numbers) if numbers else None
    except InvalidValue as error:
        raise click.BadParameter(error.message) from None


@click.command()
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
    "payees",
    multiple=True,
    callback=_parse_payees,
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
    payees: Payees | None,
    seed: int,
    bad_rows: int | None,
    as_json: bool,
) -> None:
    """Write a realistic sample payment file; the lines of its deliberately bad rows are listed on stderr.

    A seed always writes the same payments under the same references: submitting them again applies nothing twice.

    \b
    Example:
      submit generate --rows 1000 --out sample.csv
    """
    to_stdout = str(out_path) == "-"
    if bad_rows is None:
        bad_rows = min(5, rows)
    elif bad_rows > rows:
        raise click.BadParameter(f"{bad_rows} is more than --rows {rows}", param_hint="--bad-rows")
    if as_json and to_stdout:
        raise click.UsageError("--json prints a summary on stdout, where the file would go: give --out a path")
    try:
        chosen_format = (
            FileFormat(file_format) if file_format else FileFormat.CSV if to_stdout else FileFormat.of(out_path)
        )
    except UnreadableFile as error:
        raise click.BadParameter(str(error), param_hint="--out") from None
    payees = payees or demo_payees()
    try:
        with nullcontext(sys.stdout) if to_stdout else out_path.open("w", newline="", encoding="utf-8") as out:
            bad = write_sample(out, chosen_format, payees, rows, seed, bad_rows)
    except BrokenPipeError:
        # The reader of a pipe stopped early (| head): not an error, and nothing more to say on stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as error:
        fail(f"cannot write {out_path}: {error.strerror or error}")
    where = "stdout" if to_stdout else str(out_path)
    bad_json = [{"line": row.line, "field": row.field, "problem": str(row.flaw)} for row in bad]
    summary = {"path": where, "format": chosen_format.value, "rows": rows, "seed": seed, "bad_rows": bad_json}

    def render() -> None:
        count = len(set(payees.destinations + payees.sources))
        accounts = f"{count} account" + ("" if count == 1 else "s")
        click.echo(f"wrote {rows} rows to {where} ({chosen_format.value}, seed {seed}, {accounts})", err=True)
        if bad:
            click.echo(
                f"{len(bad)} deliberately bad rows, which 'submit file' reports as invalid and does not send:", err=True
            )
            for row in bad:
                click.echo(f"  line {row.line}: {row.field}: {row.flaw}", err=True)

    emit(as_json, summary, render)
