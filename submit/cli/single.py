"""`submit deposit`, `withdraw`, `transfer` and `status`: one payment at a time, and the outcome of one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.messages import Deposit, PaymentMessage, Transfer, Withdrawal
from processor.presenters import outcome_json
from processor.terminal import (
    P,
    R,
    Seconds,
    broker_failure,
    console,
    emit,
    fail,
    json_option,
    reports_errors,
    unavailable,
    untrusted,
)
from processor.times import format_time
from submit.client import Client, NotSent


def outcome_table(outcome: Outcome) -> Table:
    table = Table(show_header=False, box=None)
    data = outcome_json(outcome)
    for key in ("reference", "status", "reason", "type", "amount", "currency", "source", "destination"):
        if data[key] is not None:
            table.add_row(key, untrusted(data[key]))
    for error in data["errors"]:
        table.add_row("error", untrusted(error))
    for conflict in outcome.conflicts:
        at = f" at {format_time(conflict.at, 'seconds')}" if conflict.at else ""
        differing = ", ".join(f"{name} {conflict.payload.get(name)}" for name in conflict.fields)
        table.add_row("conflict", untrusted(f"an attempt{at} with {differing}: not applied"))
    return table


def show_outcome(outcome: Outcome, as_json: bool) -> None:
    emit(as_json, outcome_json(outcome), lambda: console.print(outcome_table(outcome)))


def send_options(command: Callable[P, R]) -> Callable[P, R]:
    options: list[Callable[[Any], Any]] = [
        click.option("--amount", required=True, help="A decimal amount such as 125.50."),
        click.option("--currency", default=None, help="ISO 4217 code [default: PROCESSOR_DEFAULT_CURRENCY or GBP]."),
        click.option("--reference", default=None, help="Your idempotency key [default: a new one]."),
        click.option("--description", default=None, help="Free text kept with the payment."),
        click.option("--wait", is_flag=True, help="Wait for the outcome and show it."),
        click.option(
            "--timeout", default=30.0, show_default=True, type=Seconds(), help="Seconds --wait waits for an outcome."
        ),
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


MESSAGES_BY_VERB: dict[str, type[PaymentMessage]] = {"deposit": Deposit, "withdraw": Withdrawal, "transfer": Transfer}


def send(verb: str, account_fields: dict[str, str], wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    client = Client()
    message = client.message(MESSAGES_BY_VERB[verb], **fields, **account_fields)
    try:
        client.send_message(message)
    except NotSent as error:
        unavailable(
            f"{broker_failure(error.__cause__ or error).rstrip('.')}. To try again, send it with --reference"
            f" {message.reference}: if it did go, it applies once"
        )
    if not wait:
        emit(
            as_json,
            {"reference": message.reference, "status": OutcomeStatus.PENDING.value},
            lambda: console.print(f"enqueued {message.reference}"),
        )
        return
    outcome = client.wait(message.reference, timeout)
    show_outcome(outcome, as_json)
    if outcome.status is OutcomeStatus.PENDING:
        fail(
            f"no outcome for {message.reference} after {timeout:g} s: is a worker running? (celery -A processor"
            f" worker). To send it again, use --reference {message.reference}: it applies once"
        )
    if outcome.identity() != message.request().identity():
        # The reference was used before, for another payment: what is shown is that one's outcome, and this
        # request will be recorded as a conflict with no effect.
        fail(f"{message.reference} was already used for another payment (shown above); this one is not applied")


@click.command()
@click.option("--account", required=True, help="The account to credit.")
@send_options
@reports_errors
def deposit(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a deposit into an account.

    \b
    Example:
      submit deposit --account 100000011 --amount 250.00 --reference salary-2026-11 --wait
    """
    send("deposit", {"account": account}, wait, timeout, as_json, **fields)


@click.command()
@click.option("--account", required=True, help="The account to debit.")
@send_options
@reports_errors
def withdraw(account: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a withdrawal from an account.

    \b
    Example:
      submit withdraw --account 100000011 --amount 40 --json
    """
    send("withdraw", {"account": account}, wait, timeout, as_json, **fields)


@click.command()
@click.option("--source", required=True, help="The account to debit.")
@click.option("--destination", required=True, help="The account to credit.")
@send_options
@reports_errors
def transfer(source: str, destination: str, wait: bool, timeout: float, as_json: bool, **fields: Any) -> None:
    """Enqueue a transfer between two accounts.

    \b
    Example:
      submit transfer --source 100000011 --destination 100000022 --amount 25 --reference invoice-7781
    """
    send("transfer", {"source": source, "destination": destination}, wait, timeout, as_json, **fields)


@click.command()
@click.argument("reference")
@json_option
@reports_errors
def status(reference: str, as_json: bool) -> None:
    """Show the outcome of a reference (applied, rejected with its reason, or pending) and any conflicts.

    \b
    Example:
      submit status invoice-7781 --json
    """
    show_outcome(Client().status(reference), as_json)
