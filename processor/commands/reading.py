"""Reading commands: customer list, account list, account statement, audit list. Thin over services.reading."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime

import click
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands.options import account_cells, from_to_options, page_options, period, print_next
from processor.domain.money import format_amount
from processor.domain.pages import MAX_PAGE
from processor.presenters import (
    STATEMENT_CSV_COLUMNS,
    account_json,
    audit_json,
    customer_json,
    page_json,
    statement_csv_row,
    statement_json,
)
from processor.services import reading as services
from processor.terminal import console, emit, json_option, reports_errors, untrusted
from processor.times import format_time


@click.command("list")
@click.option("--search", default=None, help="Part of a name or an email address, or a customer number.")
@page_options
@json_option
@reports_errors
def customer_list(search: str | None, limit: int, after: str | None, as_json: bool) -> None:
    """List customers by number.

    \b
    Example:
      processor customer list --search lovelace --limit 20
    """
    page = services.list_customers(unit_of_work(), search, limit, after)

    def render() -> None:
        table = Table("customer", "name", "email")
        for c in page.items:
            table.add_row(str(c.number), untrusted(c.name), untrusted(c.email))
        print_next(console, table, page.next, "no customers")

    emit(as_json, page_json(page, customer_json), render)


@click.command("list")
@click.option("--customer", type=int, default=None, help="Only this customer's accounts.")
@click.option("--type", "account_type", default=None, help="standard, savings, reward or settlement.")
@click.option("--status", default=None, help="active, dormant, outgoing_blocked, incoming_blocked, frozen, closed.")
@page_options
@json_option
@reports_errors
def account_list(
    customer: int | None, account_type: str | None, status: str | None, limit: int, after: str | None, as_json: bool
) -> None:
    """List accounts in the order they were opened.

    \b
    Example:
      processor account list --status frozen
    """
    page = services.list_accounts(unit_of_work(), customer, account_type, status, limit, after)

    def render() -> None:
        table = Table("account", "customer", "type", "status", "currency", "balance", "overdraft limit", "points")
        for a in page.items:
            table.add_row(a.number, "-" if a.customer is None else str(a.customer), *account_cells(a))
        print_next(console, table, page.next, "no accounts")

    emit(as_json, page_json(page, account_json), render)


@click.command("statement")
@click.argument("number", metavar="ACCOUNT")
@from_to_options
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="csv streams every entry of the range (no --limit unless given).",
)
@click.option("--limit", default=None, type=click.IntRange(1, MAX_PAGE), help="Rows on this page [default: 50].")
@click.option("--after", default=None, metavar="CURSOR", help="Start after this cursor (a page's 'next').")
@json_option
@reports_errors
def account_statement(
    number: str,
    start: date | datetime | None,
    end: date | datetime | None,
    output: str,
    limit: int | None,
    after: str | None,
    as_json: bool,
) -> None:
    """An account's ledger entries, oldest first: counterparty, description, balance after each; the opening
    and closing balance of the range.

    \b
    Example:
      processor account statement 100000011 --from 2026-11-01 --to 2026-11-30 --format csv > nov.csv
    """
    since, until = period(start, end)
    if output == "csv" and not as_json:
        with services.export_statement(unit_of_work(), number, since, until, limit, after) as (_, entries):
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(STATEMENT_CSV_COLUMNS)
            for entry in entries:
                writer.writerow(statement_csv_row(entry))
        return
    statement = services.account_statement(unit_of_work(), number, since, until, limit or services.DEFAULT_PAGE, after)
    if as_json or output == "json":
        click.echo(json.dumps(statement_json(statement), indent=2))
        return
    span = " ".join(
        part
        for part in (
            f"from {format_time(since, 'seconds')}" if since else "",
            f"to {format_time(until, 'seconds')}" if until else "",
        )
        if part
    )
    account = statement.account
    console.print(f"statement of account {account.number} ({account.currency}){' ' + span if span else ''}")
    console.print(f"opening balance {format_amount(statement.opening_balance)}")
    table = Table("at", "reference", "type", "counterparty", "description", "amount", "balance after")
    for e in statement.entries.items:
        table.add_row(
            format_time(e.at, "seconds"),
            e.reference,
            e.type or "",
            e.counterparty or "",
            untrusted(e.description or ("reversal of " + e.reverses if e.reverses else "")),
            format_amount(e.amount),
            format_amount(e.balance_after),
        )
    print_next(console, table, statement.entries.next, "no entries in this range")
    console.print(f"closing balance {format_amount(statement.closing_balance)}")


@click.group()
def audit() -> None:
    """Read the audit log: who did what, when, and why."""


@audit.command("list")
@click.option("--account", default=None, help="Only the actions on this account.")
@click.option("--transaction", default=None, metavar="REFERENCE", help="Only those on this transaction (reversals).")
@page_options
@json_option
@reports_errors
def audit_list(account: str | None, transaction: str | None, limit: int, after: str | None, as_json: bool) -> None:
    """List audit entries, newest first.

    \b
    Example:
      processor audit list --account 100000011 --limit 10
    """
    page = services.list_audit(unit_of_work(), account, transaction, limit, after)

    def render() -> None:
        table = Table("at", "actor", "action", "on", "details")
        for a in page.items:
            details = ", ".join(f"{k}={v}" for k, v in a.details.items() if v is not None)
            table.add_row(
                format_time(a.at, "seconds"),
                untrusted(a.actor),
                a.action,
                f"{a.entity_type} {a.entity}",
                untrusted(details),
            )
        print_next(console, table, page.next, "no audit entries")

    emit(as_json, page_json(page, audit_json), render)
