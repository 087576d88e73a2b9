"""transaction list, show and reverse. Thin over services.reading and services.reversal."""

from __future__ import annotations

import json
from datetime import date, datetime

import click
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands.options import actor_option, from_to_options, page_options, period, print_next
from processor.domain.money import format_amount
from processor.domain.outcomes import Delivery, OutcomeStatus
from processor.presenters import outcome_json, page_json, transaction_detail_json, transaction_json
from processor.services import reading as services
from processor.services.reversal import reverse_transaction
from processor.terminal import console, emit, fail, json_option, reports_errors, settings_or_exit, untrusted
from processor.times import format_time


@click.group()
def transaction() -> None:
    """Find, read and reverse transactions."""


@transaction.command("list")
@click.option("--account", default=None, help="Only transactions from or to this account.")
@from_to_options
@click.option("--status", default=None, help="applied or rejected.")
@click.option("--reason", default=None, help="A rejection's reason code, e.g. insufficient_funds.")
@page_options
@json_option
@reports_errors
def transaction_list(
    account: str | None,
    start: date | datetime | None,
    end: date | datetime | None,
    status: str | None,
    reason: str | None,
    limit: int,
    after: str | None,
    as_json: bool,
) -> None:
    """List transactions, newest first.

    \b
    Example:
      processor transaction list --account 100000011 --from 2026-12-01 --status rejected
    """
    since, until = period(start, end)
    page = services.list_transactions(unit_of_work(), account, since, until, status, reason, limit, after)

    def render() -> None:
        table = Table("at", "reference", "status", "type", "source", "destination", "amount", "description")
        for t in page.items:
            amount = "" if t.amount is None else f"{format_amount(t.amount)} {t.currency}"
            description = t.description or ""
            if t.reverses:
                description = f"reversal of {t.reverses}: {description}"
            table.add_row(
                format_time(t.at, "seconds"),
                t.reference,
                t.status if t.reason is None else f"{t.status} ({t.reason})",
                t.type or "",
                t.source or "",
                t.destination or "",
                amount,
                untrusted(description),
            )
        print_next(console, table, page.next, "no transactions")

    emit(as_json, page_json(page, transaction_json), render)


@transaction.command("show")
@click.argument("reference")
@json_option
@reports_errors
def transaction_show(reference: str, as_json: bool) -> None:
    """Show what is recorded under a reference: the request, its outcome, entries, conflicts, reversal, holds.

    \b
    Example:
      processor transaction show salary-2026-11
    """
    detail = services.show_transaction(unit_of_work(), reference)
    data = transaction_detail_json(detail)

    def render() -> None:
        table = Table(show_header=False, box=None)
        for key in ("reference", "status", "reason", "type", "amount", "currency", "source", "destination"):
            if data[key] is not None:
                table.add_row(key, str(data[key]))
        if detail.transaction is not None:
            table.add_row("at", format_time(detail.transaction.at, "seconds"))
        if data["description"]:
            table.add_row("description", untrusted(data["description"]))
        for key, label in (("reverses", "reverses"), ("reversed_by", "reversed by")):
            if data[key]:  # type: ignore[literal-required]
                table.add_row(label, str(data[key]))  # type: ignore[literal-required]
        if data["rejected_reversals"]:
            table.add_row("rejected reversals", ", ".join(data["rejected_reversals"]))
        if data["held"]:
            table.add_row("held messages", ", ".join(str(i) for i in data["held"]))
        for error in data["errors"]:
            table.add_row("error", untrusted(error))
        table.add_row("request", untrusted(json.dumps(data["request"])))
        console.print(table)
        if data["entries"]:
            entries = Table("account", "amount", "balance after", "at", title="entries")
            for line, e in zip(detail.entries, data["entries"], strict=True):
                entries.add_row(e["account"], e["amount"], e["balance_after"], format_time(line.at, "seconds"))
            console.print(entries)
        if data["conflicts"]:
            conflicts = Table("at", "fields that differed", "attempt", title="conflicting attempts (no effect)")
            for conflict, c in zip(detail.conflicts, data["conflicts"], strict=True):
                at = "" if conflict.at is None else format_time(conflict.at, "seconds")
                conflicts.add_row(at, ", ".join(c["fields"]), untrusted(json.dumps(c["payload"])))
            console.print(conflicts)

    emit(as_json, data, render)


@transaction.command("reverse")
@click.argument("reference")
@click.option("--reason", required=True, help="Why; recorded as the reversal's description and in the audit log.")
@click.option("--reference", "new_reference", default=None, help="The reversal's own reference [default: new].")
@actor_option
@json_option
@reports_errors
def transaction_reverse(
    reference: str, reason: str, new_reference: str | None, actor: str | None, as_json: bool
) -> None:
    """Reverse an applied transaction: a new one posts the opposite entries, under the usual rules.

    \b
    Example:
      processor transaction reverse salary-2026-11 --reason "paid twice, ticket 4411" --actor alice
    """
    config = settings_or_exit()
    outcome = reverse_transaction(
        unit_of_work(), reference, reason, actor or config.actor, config.policy(), new_reference
    )
    data = {**outcome_json(outcome), "reverses": reference}
    recorded_already = outcome.delivery is Delivery.DUPLICATE

    def render() -> None:
        if outcome.status is OutcomeStatus.APPLIED:
            again = " (recorded already)" if recorded_already else ""
            console.print(
                f"transaction {reference} reversed by {outcome.reference}{again}: {outcome.type} of"
                f" {outcome.amount} {outcome.currency}"
            )

    emit(as_json, data, render)
    if outcome.status is OutcomeStatus.REJECTED:
        fail(
            f"reversal {outcome.reference} of {reference} was rejected ({outcome.reason}) and recorded as such;"
            f" {reference} stands"
        )
