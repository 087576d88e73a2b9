"""The operator CLI: thin over the services. Every command takes --json; a user's mistake is one line on stderr."""

from __future__ import annotations

import click
import sqlalchemy
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands import held as held_commands
from processor.commands import reading, transactions
from processor.commands.options import account_cells, actor_option
from processor.db import admin
from processor.domain.accounts import Account
from processor.logs import configure_logging
from processor.presenters import account_json, customer_json, verify_json
from processor.services import accounts as account_services
from processor.services import customers as customer_services
from processor.services.verify import verify_ledger
from processor.terminal import console, emit, fail, json_option, reports_errors, settings_or_exit


def account_table(account: Account, title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, box=None)
    for key, value in account_json(account).items():
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """ABC Bank transaction processor: operator commands."""
    config = settings_or_exit()
    configure_logging(config.log_format, config.log_level, default_level="WARNING")


@cli.group()
def db() -> None:
    """Create and migrate the database."""


@db.command("create")
@json_option
@reports_errors
def db_create(as_json: bool) -> None:
    """Create the database named in DATABASE_URL if it does not exist."""
    url = settings_or_exit().database_url
    name = sqlalchemy.engine.make_url(url).database
    created = admin.create_database(url)
    emit(
        as_json,
        {"database": name, "created": created},
        lambda: console.print(f"database {name} {'created' if created else 'already exists'}"),
    )


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="The Alembic revision to upgrade to.")
@json_option
@reports_errors
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply the Alembic migrations (upgrade head)."""
    current = admin.upgrade(settings_or_exit().database_url, revision)
    emit(as_json, {"revision": current}, lambda: console.print(f"database at revision {current}"))


@cli.group()
def customer() -> None:
    """Register and look up customers."""


@customer.command("register")
@click.option("--name", required=True, help="The customer's full name.")
@click.option("--email", required=True, help="The customer's email address (one customer per address).")
@actor_option
@json_option
@reports_errors
def customer_register(name: str, email: str, actor: str | None, as_json: bool) -> None:
    """Register a customer and print their customer number."""
    registered = customer_services.register_customer(unit_of_work(), name, email, actor or settings_or_exit().actor)
    emit(
        as_json,
        customer_json(registered),
        lambda: console.print(f"customer {registered.number} registered: {registered.name} <{registered.email}>"),
    )


@customer.command("show")
@click.argument("number", type=int, metavar="CUSTOMER")
@json_option
@reports_errors
def customer_show(number: int, as_json: bool) -> None:
    """Show a customer and their accounts."""
    found, accounts = customer_services.get_customer(unit_of_work(), number)

    def render() -> None:
        console.print(f"customer {found.number}: {found.name} <{found.email}>")
        table = Table("account", "type", "status", "currency", "balance", "overdraft limit", "reward points")
        for a in accounts:
            table.add_row(a.number, *account_cells(a))
        console.print(table if accounts else "no accounts")

    emit(as_json, customer_json(found, accounts), render)


@cli.group()
def account() -> None:
    """Open accounts, show them, change their status, print statements."""


@account.command("open")
@click.option("--customer", "customer_number", type=int, required=True, help="The customer number.")
@click.option("--type", "account_type", type=click.Choice(["standard", "savings", "reward"]), required=True)
@click.option("--currency", default=None, help="ISO 4217 code [default: PROCESSOR_DEFAULT_CURRENCY, GBP].")
@click.option("--overdraft-limit", default=None, help="How far below zero a standard account may go [default: 0].")
@actor_option
@json_option
@reports_errors
def account_open(
    customer_number: int,
    account_type: str,
    currency: str | None,
    overdraft_limit: str | None,
    actor: str | None,
    as_json: bool,
) -> None:
    """Open an account for a customer and print its number."""
    config = settings_or_exit()
    opened = account_services.open_account(
        unit_of_work(),
        customer_number,
        account_type,
        currency or config.default_currency,
        actor or config.actor,
        config.currencies,
        overdraft_limit,
    )
    emit(as_json, account_json(opened), lambda: console.print(account_table(opened, f"account {opened.number} opened")))


@account.command("show")
@click.argument("number", metavar="ACCOUNT")
@json_option
@reports_errors
def account_show(number: str, as_json: bool) -> None:
    """Show an account: customer, type, status, currency, balance, overdraft limit, reward points."""
    found = account_services.get_account(unit_of_work(), number)
    emit(as_json, account_json(found), lambda: console.print(account_table(found)))


@account.command("set-status")
@click.argument("number", metavar="ACCOUNT")
@click.argument("status", metavar="STATUS")
@click.option("--reason", required=True, help="Why; recorded in the audit log.")
@actor_option
@json_option
@reports_errors
def account_set_status(number: str, status: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Change an account's status (active, dormant, outgoing_blocked, incoming_blocked, frozen, closed)."""
    changed = account_services.change_status(unit_of_work(), number, status, reason, actor or settings_or_exit().actor)
    emit(as_json, account_json(changed), lambda: console.print(f"account {changed.number} is now {changed.status}"))


@cli.command("verify")
@json_option
@reports_errors
def verify(as_json: bool) -> None:
    """Check the ledger's invariants; exits 1 if any is broken."""
    violations = verify_ledger(unit_of_work())

    def render() -> None:
        if not violations:
            console.print("ok: every invariant holds")
            return
        table = Table("check", "detail", title=f"{len(violations)} violation(s)")
        for v in violations:
            table.add_row(v.check, ", ".join(f"{k}={val}" for k, val in v.detail.items()))
        console.print(table)

    emit(as_json, verify_json(violations), render)
    if violations:
        fail(f"{len(violations)} ledger invariant violation(s)")


# The reading, reversal and held commands live in processor/commands/.
customer.add_command(reading.customer_list)
account.add_command(reading.account_list)
account.add_command(reading.account_statement)
cli.add_command(transactions.transaction)
cli.add_command(reading.audit)
cli.add_command(held_commands.held)


def main() -> None:
    cli(prog_name="processor")
