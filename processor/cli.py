"""The operator CLI: thin over the services. Every command takes --json; a user's mistake is one line on stderr."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import date, timedelta

import click
import sqlalchemy
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands import held as held_commands
from processor.commands import reading, tokens, transactions, users
from processor.commands.options import account_cells, actor_option
from processor.config import Settings
from processor.db import admin, roles
from processor.domain.accounts import Account
from processor.presenters import account_json, customer_json, stats_json, verify_json
from processor.services import accounts as account_services
from processor.services import customers as customer_services
from processor.services.stats import outcome_stats
from processor.services.verify import verify_ledger
from processor.terminal import (
    Duration,
    Moment,
    P,
    R,
    console,
    emit,
    fail,
    in_zone,
    json_option,
    reports_errors,
    settings_or_exit,
)
from processor.times import format_time

# Section 9's exit codes, shown at the foot of every command's help.
EXIT_CODES = "Exit codes: 0 done; 1 refused or not found; 2 usage error; 69 database or broker unreachable."
CONTEXT = {"help_option_names": ["-h", "--help"]}


def account_table(account: Account, title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, box=None)
    for key, value in account_json(account).items():
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    return table


@click.group("processor", context_settings=CONTEXT, epilog=EXIT_CODES)
@click.version_option(package_name="abcbank-processor", prog_name="processor")
def cli() -> None:
    """ABC Bank transaction processor: operator commands.

    Settings come from the environment (DATABASE_URL, PROCESSOR_*); each command checks them when it runs, so
    --help works whatever they hold.

    \b
    Example:
      processor account show 100000011 --json
    """


@cli.group()
def db() -> None:
    """Create and migrate the database, and the roles that use it."""


@db.command("create")
@json_option
@reports_errors
def db_create(as_json: bool) -> None:
    """Create the database named in DATABASE_URL if it does not exist.

    \b
    Example:
      processor db create
    """
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
    """Apply the Alembic migrations (upgrade head), then grant the processor's roles again, if they exist.

    \b
    Example:
      processor db upgrade
    """
    settings = settings_or_exit()
    current = admin.upgrade(settings.database_url, revision)
    granted = roles.grant_existing(settings.database_url, role_names(settings))

    def render() -> None:
        console.print(f"database at revision {current}")
        if granted:
            console.print(f"granted to {', '.join(granted)}")

    emit(as_json, {"revision": current, "granted": granted}, render)


def role_names(settings: Settings) -> roles.RoleNames:
    return roles.RoleNames(
        settings.db_owner_role, settings.db_worker_role, settings.db_operator_role, settings.db_reader_role
    )


def password_env_option(kind: roles.Kind) -> Callable[[Callable[P, R]], Callable[P, R]]:
    return click.option(
        f"--{kind.value}-password-env",
        f"{kind.value}_password_env",
        default=f"ABCBANK_{kind.value.upper()}_PASSWORD",
        show_default=True,
        metavar="VARIABLE",
        callback=_variable_name,
        help=f"The environment variable that holds the {kind.value} role's password (needed for a new role; "
        "unset, an existing role keeps its password).",
    )


def _variable_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise click.BadParameter(f"{value!r} is not an environment variable name (the password is never an option)")
    return value


@db.command("roles")
@password_env_option(roles.Kind.OWNER)
@password_env_option(roles.Kind.WORKER)
@password_env_option(roles.Kind.OPERATOR)
@password_env_option(roles.Kind.READER)
@json_option
@reports_errors
def db_roles(
    owner_password_env: str,
    worker_password_env: str,
    operator_password_env: str,
    reader_password_env: str,
    as_json: bool,
) -> None:
    """Create the owner, worker, operator and reader roles (PROCESSOR_DB_*_ROLE) and grant each what it needs.

    Connect as a superuser (DATABASE_URL). A new role's password is read from the variable its option names
    (ABCBANK_OWNER_PASSWORD and so on). Running it again changes only what differs.

    \b
    Example:
      processor db roles --json
    """
    settings = settings_or_exit()
    variables = {
        roles.Kind.OWNER: owner_password_env,
        roles.Kind.WORKER: worker_password_env,
        roles.Kind.OPERATOR: operator_password_env,
        roles.Kind.READER: reader_password_env,
    }
    empty = [variable for variable in variables.values() if os.environ.get(variable) == ""]
    if empty:
        fail(f"{', '.join(empty)} is set but empty: give the role a password, or unset it to keep the one it has")
    passwords = {kind: os.environ.get(variable) for kind, variable in variables.items()}
    names = role_names(settings)
    try:
        changes = roles.create_roles(settings.database_url, names, passwords)
    except roles.PasswordsMissing as error:
        unset = ", ".join(f"{variables[kind]} (for {names.of(kind)})" for kind in error.kinds)
        fail(f"a new role needs a password, and these are not set: {unset}; nothing was changed")
    database = sqlalchemy.engine.make_url(settings.database_url).database

    def render() -> None:
        for change in changes:
            password = "password set" if change.password_set else "password unchanged"
            console.print(
                f"role {change.role} ({change.kind}): {'created' if change.created else 'updated'}, {password}"
            )
        console.print(f"database {database}: owned by {settings.db_owner_role}, grants applied")

    data = {
        "database": database,
        "roles": [
            {"kind": c.kind.value, "role": c.role, "created": c.created, "password_set": c.password_set}
            for c in changes
        ],
    }
    emit(as_json, data, render)


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
    """Register a customer and print their customer number.

    \b
    Example:
      processor customer register --name "Ada Lovelace" --email ada@example.com
    """
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
    """Show a customer and their accounts.

    \b
    Example:
      processor customer show 100001
    """
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
    """Open an account for a customer and print its number.

    \b
    Example:
      processor account open --customer 100001 --type standard --overdraft-limit 100
    """
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
    """Show an account: customer, type, status, currency, balance, overdraft limit, reward points.

    \b
    Example:
      processor account show 100000011 --json
    """
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
    """Change an account's status (active, dormant, outgoing_blocked, incoming_blocked, frozen, closed).

    \b
    Example:
      processor account set-status 100000011 frozen --reason "case 7781" --actor alice
    """
    changed = account_services.change_status(unit_of_work(), number, status, reason, actor or settings_or_exit().actor)
    emit(as_json, account_json(changed), lambda: console.print(f"account {changed.number} is now {changed.status}"))


@cli.command("verify")
@json_option
@reports_errors
def verify(as_json: bool) -> None:
    """Check the ledger's invariants; exits 1 if any is broken.

    \b
    Example:
      processor verify --json
    """
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
cli.add_command(tokens.api_token)
cli.add_command(users.user)


@cli.command("stats")
@click.option("--since", type=Duration(), default=None, help="The period: this long until now [default: 24h].")
@click.option("--from", "start", type=Moment(), default=None, help="The period's start: a date or an RFC 3339 time.")
@click.option(
    "--to", "end", type=Moment(), default=None, help="Its end, excluded; a date includes that day [default: now]."
)
@json_option
@reports_errors
def stats(since: timedelta | None, start: date | None, end: date | None, as_json: bool) -> None:
    """Outcomes recorded over a period, by status and rejection reason, and the messages held for operators.

    A payment is in the database only once it has an outcome, so "pending" here means held: a message that could
    not be applied or recorded (processor held). Payments still on the queue are seen in Flower.

    \b
    Example:
      processor stats --since 1h --json
    """
    if since is not None and (start is not None or end is not None):
        raise click.UsageError("--since is a period until now: give it, or --from/--to, not both")
    if end is not None and start is None:
        raise click.UsageError("--to needs --from")
    if start is None:
        found = outcome_stats(unit_of_work(), since or timedelta(hours=24))
    else:
        zone = settings_or_exit().zone
        period_start, period_end = in_zone(start, zone), None if end is None else in_zone(end, zone, end=True)
        if period_end is not None and period_end <= period_start:
            raise click.UsageError(f"--to {end} is not after --from {start}")
        found = outcome_stats(unit_of_work(), period_start, period_end)

    def render() -> None:
        console.print(f"from {format_time(found.start, 'seconds')} to {format_time(found.end, 'seconds')}")
        table = Table(show_header=False, box=None)
        table.add_row("outcomes", str(found.outcomes))
        for status, count in found.by_status.items():
            table.add_row(f"  {status}", str(count))
        for reason, count in found.rejected_by_reason.items():
            table.add_row(f"    {reason}", str(count))
        table.add_row("conflicting attempts (no effect)", str(found.conflicts))
        table.add_row("held in the period", str(found.held_in_period))
        oldest = "" if found.oldest_held is None else f", oldest {format_time(found.oldest_held, 'seconds')}"
        table.add_row("held in all (no outcome)", f"{found.held}{oldest}")
        console.print(table)

    emit(as_json, stats_json(found), render)


def main() -> None:
    cli(prog_name="processor")
