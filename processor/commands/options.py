"""What the operator commands share: options, parameter types, table cells."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import click
from rich.console import Console
from rich.table import Table

from processor.domain.accounts import Account
from processor.domain.money import format_amount
from processor.domain.pages import MAX_PAGE
from processor.terminal import Moment, P, R, in_zone, settings_or_exit


def actor_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option(
        "--actor", default=None, help="Who is acting, for the audit log [default: PROCESSOR_ACTOR or your login]."
    )(command)


def page_options(command: Callable[P, R]) -> Callable[P, R]:
    """--limit and --after: a page of a listing, and where it starts (the `next` a previous page printed)."""
    command = click.option(
        "--after", "after", default=None, metavar="CURSOR", help="Start after this cursor (a page's 'next')."
    )(command)
    return click.option(
        "--limit", default=50, show_default=True, type=click.IntRange(1, MAX_PAGE), help="Rows on this page."
    )(command)


def period(start: date | datetime | None, end: date | datetime | None) -> tuple[datetime | None, datetime | None]:
    """--from and --to as moments in PROCESSOR_TIMEZONE: a date is its midnight, and as --to it includes that day."""
    zone = settings_or_exit().zone
    return (None if start is None else in_zone(start, zone), None if end is None else in_zone(end, zone, end=True))


def from_to_options(command: Callable[P, R]) -> Callable[P, R]:
    command = click.option(
        "--to", "end", type=Moment(), default=None, help="Up to this date (included) or time (excluded)."
    )(command)
    return click.option("--from", "start", type=Moment(), default=None, help="From this date or time (included).")(
        command
    )


def print_next(console: Console, table: Table, next_cursor: str | None, empty: str) -> None:
    """A page as a table, or a line saying there is nothing; then how to ask for the next page, if there is one."""
    console.print(table if table.row_count else empty)
    if next_cursor is not None:
        console.print(f"more: --after {next_cursor}")


def account_cells(a: Account) -> list[str]:
    """An account as a table row: type, status, currency, balance, overdraft limit, reward points."""
    return [
        a.type,
        a.status,
        a.currency,
        format_amount(a.balance),
        format_amount(a.overdraft_limit),
        str(a.reward_points),
    ]
