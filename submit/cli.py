"""The `submit` command. Its verbs arrive with the queue (Celery) work; until then it only explains itself."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Send payment requests to the ABC Bank processor (deposit, withdraw, transfer, file, status).

    No verbs yet: they come with the queue. Until then, payments are applied by the services directly;
    see `make demo`.
    """


def main() -> None:
    cli(prog_name="submit")
