"""`python -m bench [--rows N] [--quick] [--json]`: measure, print the figures, exit 1 if a correctness check failed."""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console

from bench.run import Sizes, make_workdir, remove_workdir, run_bench

DEFAULT_ROWS = 100_000
QUICK_ROWS = 300
MESSAGES_MAX = 20_000


def sizes_for(rows: int | None, messages: int | None, quick: bool) -> Sizes:
    """--rows, else a quick run's 300, else BENCH_ROWS, else 100,000; messages default to min(rows, 20,000)."""
    if rows is None:
        configured = os.environ.get("BENCH_ROWS") or str(DEFAULT_ROWS)
        if not configured.isdigit():
            raise click.BadParameter(f"{configured!r} is not a number of rows", param_hint="BENCH_ROWS")
        rows = QUICK_ROWS if quick else int(configured)
    if rows < 1:
        raise click.BadParameter("must be at least 1", param_hint="--rows / BENCH_ROWS")
    return Sizes(rows, messages or min(rows, MESSAGES_MAX), quick)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rows", type=click.IntRange(min=1), help="Rows of each payment file [default: BENCH_ROWS, or 100000].")
@click.option(
    "--messages",
    type=click.IntRange(min=1),
    help="Messages of the no-op and single-payment drains [default: min(rows, 20000)].",
)
@click.option("--quick", is_flag=True, help="A smoke run: 300 rows, a few seconds a stage.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--worker-loglevel", default="info", show_default=True, help="-l of every worker, reference and project.")
@click.option("--keep-files", is_flag=True, help="Keep the work directory (logs, files) even when the run passes.")
def main(
    rows: int | None, messages: int | None, quick: bool, as_json: bool, worker_loglevel: str, keep_files: bool
) -> None:
    """Measure the references and the project in one run, on a database and Redis database of its own."""
    sizes = sizes_for(rows, messages, quick)
    progress = Console(stderr=True, highlight=False, soft_wrap=True)
    workdir = make_workdir()
    try:
        report = run_bench(sizes, worker_loglevel, progress, workdir)
    except KeyboardInterrupt:
        progress.print(f"[red]bench: interrupted[/]; workers stopped, scratch databases dropped; logs in {workdir}")
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        report.render(Console(highlight=False, width=None if sys.stdout.isatty() else 160))
    if report.ok and not keep_files:
        remove_workdir(workdir)
    else:
        progress.print(f"bench: logs and files kept in {workdir}")
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
