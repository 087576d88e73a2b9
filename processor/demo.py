"""`make demo`: a small bank on a fresh database, its payments applied by a real worker through the queue.

The operator's part (customers, accounts, statuses) goes through the services, as the `processor` CLI does. Each
payment is enqueued as a Celery message and applied by a `celery -A processor worker` started here, then stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from kombu.utils.url import maybe_sanitize_url
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.db import admin
from processor.domain.accounts import Account, make_account_number
from processor.domain.errors import InvalidRequest
from processor.domain.money import format_amount
from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.domain.requests import PaymentType
from processor.logs import configure_logging
from processor.messages import BY_TYPE, from_fields
from processor.services.accounts import change_status, get_account, open_account
from processor.services.customers import get_customer, register_customer
from processor.services.verify import verify_ledger
from processor.terminal import console
from submit.client import Client

ACTOR = "demo"
UNKNOWN = make_account_number(99999999)  # a well-formed number that no account has


@dataclass(frozen=True)
class Step:
    note: str
    fields: dict[str, object]
    # Sent as it is, skipping the producer's validation, as an upstream system that does not use `submit` might.
    unchecked: bool = False


def reset_database(url: str) -> None:
    """Drop and re-create the demo database, then migrate it with Alembic."""
    name = sqlalchemy.engine.make_url(url).database or ""
    if not name.endswith("_demo"):
        sys.exit(f"error: refusing to reset {name}: the demo only resets a database whose name ends in _demo")
    admin.drop_database(url)
    admin.create_database(url)
    admin.upgrade(url)


def open_accounts() -> dict[str, Account]:
    settings = get_settings()
    alice = register_customer(unit_of_work(), "Alice Smith", "alice@example.com", ACTOR)
    bob = register_customer(unit_of_work(), "Bob Jones", "bob@example.com", ACTOR)

    def open_(customer: int, type: str, overdraft: str | None = None) -> Account:
        return open_account(unit_of_work(), customer, type, "GBP", ACTOR, settings.currencies, overdraft)

    return {
        "alice-current": open_(alice.number, "standard", "100.00"),
        "alice-savings": open_(alice.number, "savings"),
        "bob-reward": open_(bob.number, "reward"),
        "bob-dormant": open_(bob.number, "standard"),
        "bob-on-hold": open_(bob.number, "standard"),
        "bob-winding-down": open_(bob.number, "standard"),
        "bob-frozen": open_(bob.number, "standard"),
        "bob-closed": open_(bob.number, "standard"),
    }


def scenario(a: dict[str, str]) -> list[Step]:
    def pay(
        reference: str, type: str, amount: str, source: str = "", destination: str = "", currency: str = "GBP"
    ) -> dict[str, object]:
        return {
            "reference": reference,
            "type": type,
            "source": a.get(source),
            "destination": a.get(destination, destination or None),
            "amount": amount,
            "currency": currency,
        }

    steps = [
        Step("salary into a standard account", pay("demo-001", "deposit", "500.00", destination="alice-current")),
        Step("savings deposit", pay("demo-002", "deposit", "1000.00", destination="alice-savings")),
        Step("reward deposit earns 1 point per 10.00", pay("demo-003", "deposit", "250.00", destination="bob-reward")),
        Step(
            "transfer in (no points for transfers)",
            pay("demo-004", "transfer", "120.00", "alice-current", "bob-reward"),
        ),
        Step(
            "standard may use its overdraft of 100.00", pay("demo-005", "withdrawal", "450.00", source="alice-current")
        ),
        Step("...but not go past it", pay("demo-006", "withdrawal", "50.00", source="alice-current")),
    ]
    for n in range(6):
        steps.append(
            Step(f"savings outgoing payment {n + 1} of 6", pay(f"demo-01{n}", "withdrawal", "10.00", "alice-savings"))
        )
    steps += [
        Step("the 7th this month is refused", pay("demo-016", "withdrawal", "10.00", source="alice-savings")),
        Step("reward never goes below zero", pay("demo-020", "withdrawal", "1000.00", source="bob-reward")),
        Step("dormant: incoming accepted", pay("demo-030", "deposit", "20.00", destination="bob-dormant")),
        Step("dormant: outgoing blocked", pay("demo-031", "withdrawal", "10.00", source="bob-dormant")),
        Step("legal hold: incoming accepted", pay("demo-032", "transfer", "5.00", "alice-current", "bob-on-hold")),
        Step("legal hold: outgoing blocked", pay("demo-033", "transfer", "5.00", "bob-on-hold", "alice-current")),
        Step("winding down: incoming blocked", pay("demo-034", "deposit", "5.00", destination="bob-winding-down")),
        Step("winding down: outgoing allowed", pay("demo-035", "withdrawal", "5.00", source="bob-winding-down")),
        Step("frozen: incoming blocked", pay("demo-036", "deposit", "5.00", destination="bob-frozen")),
        Step("frozen: outgoing blocked", pay("demo-037", "withdrawal", "5.00", source="bob-frozen")),
        Step("closed: nothing moves", pay("demo-038", "deposit", "5.00", destination="bob-closed")),
        Step(
            "currency must match the account",
            pay("demo-040", "deposit", "5.00", destination="bob-reward", currency="EUR"),
        ),
        Step("no transfer to the same account", pay("demo-041", "transfer", "5.00", "bob-reward", "bob-reward")),
        Step("unknown account", pay("demo-042", "deposit", "5.00", destination=UNKNOWN)),
        Step("three decimals: refused before sending", pay("demo-043", "deposit", "5.001", destination="bob-reward")),
        Step(
            "...and by the worker, from a sender that skips checks",
            pay("demo-044", "deposit", "5.001", destination="bob-reward"),
            unchecked=True,
        ),
        Step("redelivery of demo-001: no effect", pay("demo-001", "deposit", "500.00", destination="alice-current")),
        Step("demo-001 resent with another amount", pay("demo-001", "deposit", "900.00", destination="alice-current")),
    ]
    return steps


@contextmanager
def running_worker(queue: str) -> Iterator[None]:
    """A worker on the demo's own queue for the length of the demo, its log in a temporary file."""
    log_path = Path(tempfile.gettempdir()) / "abcbank-demo-worker.log"
    celery = str(Path(sys.executable).with_name("celery"))
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            # One process: a queue is first in, first out, but only one consumer applies in that order, and the
            # story needs order (the resend of demo-001 is applied before the attempt with another amount).
            [celery, "-A", "processor", "worker", "-l", "INFO", "-c", "1", "-n", "demo@%h", "-Q", queue],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ,
        )
        try:
            wait_until_ready(worker, log_path)
            console.print(f"worker started (pid {worker.pid}); its log: {log_path}")
            yield
        finally:
            worker.terminate()  # warm shutdown: running tasks finish, reserved ones go back to the queue
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                # Safe: a message is acked only after its payment is committed, and a reference applies once.
                worker.kill()
                worker.wait()
                console.print("[yellow]the worker did not stop within 30 s and was killed[/]")
            console.print("worker stopped")


@contextmanager
def own_queue(client: Client) -> Iterator[None]:
    """Delete the demo's queue at the end, with whatever an interrupted run left in it."""
    try:
        yield
    finally:
        with client.app.connection_for_write() as connection:
            queue = client.app.amqp.queues[client.queue](connection.default_channel)
            # Declared first, so that the channel knows the bindings (kept in Redis beside the queue) to delete.
            queue.declare()
            queue.delete()


def wait_until_ready(worker: subprocess.Popen[bytes], log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while " ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"error: the worker did not start; see {log_path}")
        time.sleep(0.2)


def send(client: Client, step: Step) -> str | None:
    """Enqueue a step's payment; None when the producer refused it (nothing was sent)."""
    if step.unchecked:
        # What a plain Celery producer would send: the contract's kwargs, unchecked.
        message = BY_TYPE[PaymentType(str(step.fields["type"]))]
        kwargs = {k: step.fields[k] for k in ("reference", "amount", "currency") if step.fields.get(k) is not None}
        kwargs.update({kwarg: step.fields[name] for name, kwarg in message.accounts.items()})
        client.app.send_task(message.task, kwargs=kwargs, queue=client.queue)
        return str(step.fields["reference"])
    try:
        return client.send_message(from_fields(step.fields))
    except InvalidRequest as error:
        console.print(f"[yellow]{step.fields['reference']} refused before sending:[/] {error}")
        return None


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level, default_level="ERROR")
    console.rule("ABC Bank demo")
    console.print(f"database: {sqlalchemy.engine.make_url(settings.database_url).render_as_string(hide_password=True)}")
    # A queue of this run's own: the demo takes no message of anyone else's, even on a shared broker, and leaves
    # none behind for a real worker (its worker consumes only this queue, which is deleted at the end).
    queue = f"abcbank-demo-{uuid.uuid4().hex[:12]}"
    console.print(f"broker:   {maybe_sanitize_url(settings.celery_broker_url)}, queue {queue} (the demo's own)")
    reset_database(settings.database_url)
    client = Client(queue=queue)
    accounts = open_accounts()
    numbers = {name: account.number for name, account in accounts.items()}

    with own_queue(client), running_worker(queue):
        # Fund the accounts whose status rules are on show, then give each its status, as an operator would.
        funding = [
            client.deposit(numbers[name], "50.00", reference=f"fund-{name}")
            for name in ("bob-on-hold", "bob-winding-down", "bob-frozen")
        ]
        wait_for(client, funding)
        for name, status, reason in [
            ("bob-dormant", "dormant", "no activity for 24 months"),
            ("bob-on-hold", "outgoing_blocked", "court order 2026/118"),
            ("bob-winding-down", "incoming_blocked", "customer is moving banks"),
            ("bob-frozen", "frozen", "suspected fraud, case 7781"),
            ("bob-closed", "closed", "customer request"),
        ]:
            change_status(unit_of_work(), numbers[name], status, reason, ACTOR)

        # All at once, as an upstream system would send them. The one worker process applies them in the order
        # sent; the last is the conflicting resend of demo-001, so once it is recorded every step has been applied.
        steps = scenario(numbers)
        started = time.monotonic()
        sent = [(step, send(client, step)) for step in steps]
        references = [reference for _, reference in sent if reference is not None]
        last = references[-1]
        outcomes = wait_for(client, references, until=lambda found: bool(found[last].conflicts))
        elapsed = time.monotonic() - started
    console.print(f"{len(references)} payments enqueued and applied in {elapsed:.1f} s")

    seen: dict[str, Step] = {}
    names = {number: name for name, number in numbers.items()}
    table = Table("reference", "what it shows", "type", "amount", "from", "to", "outcome", title="Payments")
    for step, reference in sent:
        if reference is None:
            table.add_row(str(step.fields["reference"]), step.note, *row(step, names), "[yellow]not sent[/]")
            continue
        outcome = outcomes[reference]
        result = "[green]applied[/]" if outcome.status == "applied" else f"[red]rejected: {outcome.reason}[/]"
        first = seen.setdefault(reference, step)
        if first is not step and first.fields["amount"] == step.fields["amount"]:
            result = f"[yellow]duplicate, no effect; stands:[/] {result}"
        elif first is not step:
            differing = ", ".join(outcome.conflicts[-1].fields)
            result = f"[yellow]conflict ({differing}) recorded, no effect; stands:[/] {result}"
        table.add_row(reference, step.note, *row(step, names), result)
    console.print(table)

    table = Table("account", "name", "customer", "type", "status", "balance", "overdraft", "points", title="Accounts")
    for name, number in numbers.items():
        account = get_account(unit_of_work(), number)
        table.add_row(
            account.number,
            name,
            str(account.customer),
            account.type,
            account.status,
            format_amount(account.balance),
            format_amount(account.overdraft_limit),
            str(account.reward_points),
        )
    console.print(table)
    for customer_number in sorted({a.customer for a in accounts.values() if a.customer is not None}):
        customer, owned = get_customer(unit_of_work(), customer_number)
        console.print(f"customer {customer.number}: {customer.name} <{customer.email}>, {len(owned)} account(s)")

    violations = verify_ledger(unit_of_work())
    if violations:
        console.print(f"[red]verify: {len(violations)} violation(s)[/]")
        sys.exit(1)
    console.print("[green]verify: ok[/] (balances match entries, every transaction sums to zero, floors hold)")


def row(step: Step, names: dict[str, str]) -> list[str]:
    source, destination = step.fields["source"], step.fields["destination"]
    return [
        str(step.fields["type"]),
        str(step.fields["amount"]),
        names.get(str(source), "") if source else "",
        names.get(str(destination), str(destination or "")),
    ]


def wait_for(
    client: Client,
    references: list[str],
    until: Callable[[dict[str, Outcome]], bool] = lambda _: True,
    timeout: float = 30.0,
) -> dict[str, Outcome]:
    """The outcomes of `references` once none is pending and `until` holds; exits if that takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        outcomes = client.outcomes(references)
        if all(o.status is not OutcomeStatus.PENDING for o in outcomes.values()) and until(outcomes):
            return outcomes
        if time.monotonic() > deadline:
            sys.exit(f"error: no outcome after {timeout:g} s for some of {references}; see the worker's log")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
