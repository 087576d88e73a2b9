"""held list, resend and resolve: messages no outcome could be recorded for, and what operators do about them."""

from __future__ import annotations

import click
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands.options import actor_option, page_options, print_next
from processor.messages import PaymentMessage
from processor.presenters import held_json, outcome_json, page_json
from processor.services.held import held_page, resend_held, resolve_held
from processor.terminal import console, emit, json_option, reports_errors, settings_or_exit, untrusted
from processor.times import format_time


@click.group(invoke_without_command=True)
@click.pass_context
def held(ctx: click.Context) -> None:
    """Messages held for operators: no outcome could be recorded (unreadable, retries spent, failed).

    Without a command, the same as `held list`.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(held_list)


@held.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved ones too.")
@page_options
@json_option
@reports_errors
def held_list(include_resolved: bool, limit: int, after: str | None, as_json: bool) -> None:
    """List held messages, newest first, with the outcome their reference has now.

    \b
    Example:
      processor held list --all --json
    """
    page = held_page(unit_of_work(), include_resolved, limit, after)

    def render() -> None:
        table = Table("id", "at", "reason", "task", "reference", "outcome", "error", "message", title="held messages")
        for m in page.items:
            fields = ", ".join(f"{k}={v}" for k, v in m.message.items())
            state = m.outcome or "pending"
            if m.resolved_at is not None:
                state += f", resolved by {m.resolved_by}"
            elif m.resends:
                state += f", resent {m.resends}x"
            # Everything but the id, time, reason and state came in a message: a sender wrote it.
            table.add_row(
                str(m.id),
                "" if m.at is None else format_time(m.at, "seconds"),
                m.reason.value,
                untrusted(m.task),
                untrusted(m.reference or "-"),
                untrusted(state),
                untrusted(m.error),
                untrusted(fields),
            )
        print_next(console, table, page.next, "no held messages")

    emit(as_json, page_json(page, held_json), render)


def _send(message: PaymentMessage) -> None:
    # The producer's own client: the same validation and the same error (NotSent) as `submit`.
    from submit.client import Client

    Client().send_message(message)


@held.command("resend")
@click.argument("held_id", type=int, metavar="ID")
@actor_option
@json_option
@reports_errors
def held_resend(held_id: int, actor: str | None, as_json: bool) -> None:
    """Send a held message again, under its reference: if it applied after all, nothing happens twice.

    \b
    Example:
      processor held resend 17 --actor alice
    """
    done = resend_held(unit_of_work(), held_id, actor or settings_or_exit().actor, _send)

    def render() -> None:
        if done.sent:
            console.print(f"held message {held_id} sent again as {done.reference}; `submit status` shows its outcome")
        else:
            console.print(
                f"nothing sent: {done.reference} has an outcome already ({done.outcome.status}"
                f"{'' if done.outcome.reason is None else ', ' + done.outcome.reason}); resolve the held message"
            )

    data = {"id": held_id, "reference": done.reference, "sent": done.sent, "outcome": outcome_json(done.outcome)}
    emit(as_json, data, render)


@held.command("resolve")
@click.argument("held_id", type=int, metavar="ID")
@click.option("--reason", required=True, help="What was done about it; recorded on it and in the audit log.")
@actor_option
@json_option
@reports_errors
def held_resolve(held_id: int, reason: str, actor: str | None, as_json: bool) -> None:
    """Close a held message with a note.

    \b
    Example:
      processor held resolve 17 --reason "sender fixed the reference and sent it again" --actor alice
    """
    resolved = resolve_held(unit_of_work(), held_id, reason, actor or settings_or_exit().actor)
    emit(
        as_json,
        held_json(resolved),
        lambda: console.print(f"held message {held_id} resolved by {resolved.resolved_by}"),
    )
