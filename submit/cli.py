"""The `submit` command: enqueue payment requests for the workers and read their outcomes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
import kombu.exceptions
from kombu.utils.url import maybe_sanitize_url
from rich.table import Table

from processor.domain.payments import Outcome, OutcomeStatus
from processor.logs import configure_logging
from processor.terminal import P, R, console, emit, fail, json_option, reports_errors, settings
from processor.views import outcome_json
from submit.client import Client


def reports_broker_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A broker that cannot be reached is one line on stderr and exit code 1, like every other failure."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except kombu.exceptions.OperationalError as error:
            url = maybe_sanitize_url(settings().celery_broker_url)
            fail(f"cannot send to the broker at {url} (CELERY_BROKER_URL): {error}")

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


def send(verb: str, accounts: dict[str, str], wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    client = Client()
    method: Callable[..., str] = getattr(client, verb)
    reference = method(**accounts, **fields)
    if not wait:
        emit(
            as_json,
            {"reference": reference, "status": OutcomeStatus.PENDING.value},
            lambda: console.print(f"enqueued {reference}"),
        )
        return
    outcome = client.wait(reference, timeout)
    show(outcome, as_json)
    if outcome.status is OutcomeStatus.PENDING:
        fail(f"no outcome for {reference} after {timeout:g} s: is a worker running? (celery -A processor worker)")


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
@reports_broker_errors
def deposit(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a deposit into an account."""
    send("deposit", {"account": account}, wait, timeout, as_json, **fields)


@cli.command()
@click.option("--account", required=True, help="The account to debit.")
@send_options
@reports_errors
@reports_broker_errors
def withdraw(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a withdrawal from an account."""
    send("withdraw", {"account": account}, wait, timeout, as_json, **fields)


@cli.command()
@click.option("--source", required=True, help="The account to debit.")
@click.option("--destination", required=True, help="The account to credit.")
@send_options
@reports_errors
@reports_broker_errors
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


def main() -> None:
    cli(prog_name="submit")
