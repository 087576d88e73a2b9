"""The `submit` command: enqueue payment requests for the workers and read their outcomes."""

from __future__ import annotations

import click

from processor.logs import configure_logging
from processor.terminal import settings_or_exit
from submit.cli.file import file_
from submit.cli.generate import generate
from submit.cli.single import deposit, status, transfer, withdraw


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Send payment requests to the ABC Bank processor and read their outcomes.

    A request is validated before it is sent: a mistyped account number or a malformed amount is refused here.
    The reference is the idempotency key: sending the same reference again never applies a payment twice.
    """
    config = settings_or_exit()
    configure_logging(config.log_format, config.log_level, default_level="WARNING")


cli.add_command(deposit)
cli.add_command(withdraw)
cli.add_command(transfer)
cli.add_command(status)
cli.add_command(file_)
cli.add_command(generate)


def main() -> None:
    cli(prog_name="submit")
