"""The `submit` command: enqueue payment requests for the workers and read their outcomes."""

from __future__ import annotations

import click

from submit.cli.file import file_
from submit.cli.generate import generate
from submit.cli.single import deposit, status, transfer, withdraw


@click.group(
    "submit",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done; 1 refused, invalid or no outcome in time; 2 usage error or unreadable file;"
    " 69 database or broker unreachable.",
)
@click.version_option(package_name="abcbank-processor", prog_name="submit")
def cli() -> None:
    """Send payment requests to the ABC Bank processor and read their outcomes.

    A request is validated before it is sent: a mistyped account number or a malformed amount is refused here.
    The reference is the idempotency key: sending the same reference again never applies a payment twice.
    Settings (CELERY_BROKER_URL, DATABASE_URL, PROCESSOR_*) are checked when a command runs, not for --help.

    \b
    Example:
      submit deposit --account 100000011 --amount 250.00 --reference salary-2026-11 --wait
    """


cli.add_command(deposit)
cli.add_command(withdraw)
cli.add_command(transfer)
cli.add_command(status)
cli.add_command(file_)
cli.add_command(generate)


def main() -> None:
    cli(prog_name="submit")
