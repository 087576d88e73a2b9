"""The bank workload of the fault suite, the sender that resends, and the checks made after every fault.

The workload is random deposits, withdrawals and transfers among accounts in two currencies, with duplicates (the
same reference and payload sent again) and reused references (the same reference with another amount), sent at a
steady pace while a fault strikes. Afterwards the sender does what the README asks of every sender: it resends,
with the same reference and payload, every payment that has no outcome. Then the books are checked against a model
built from what was sent.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import kombu.exceptions
import sqlalchemy
from celery import Celery

from processor.db.engine import get_engine
from processor.domain.accounts import Account
from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.messages import QUEUE
from processor.services.accounts import get_account
from processor.services.held import list_held
from processor.services.payments import get_outcomes
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import Worker
from tests.e2e.faults import broker_is_idle, wait_until
from tests.e2e.traffic import Message, Traffic, mixed_traffic

PROCESSOR = str(Path(sys.executable).with_name("processor"))
TYPES = {"payments.deposit": "deposit", "payments.withdraw": "withdrawal", "payments.transfer": "transfer"}
# What the sender has in hand about a payment: the fields that decide whether a resend is a duplicate or a conflict.
Identity = tuple[str, str | None, str | None, str, str]


@dataclass(frozen=True)
class Bank:
    accounts: list[Account]
    # Every reference the ledger had before the workload: the accounts' opening deposits.
    setup_references: frozenset[str]

    def account(self, number: str) -> Account:
        return next(a for a in self.accounts if a.number == number)


def open_bank(make_uow: UowFactory, database_url: str) -> Bank:
    """Accounts of every type in GBP, a few in EUR; savings ones meet their monthly limit, some start empty."""
    kinds = [("standard", "400.00"), ("savings", "600.00"), ("reward", "200.00"), ("standard", "0.00")]
    accounts = [make_account(make_uow, type=t, balance=b) for t, b in kinds * 2]
    accounts += [make_account(make_uow, type=t, balance=b, currency="EUR") for t, b in kinds]
    with get_engine(database_url).connect() as connection:
        references = connection.scalars(sqlalchemy.text("SELECT reference FROM transactions")).all()
    return Bank(accounts, frozenset(references))


def bank_workload(bank: Bank, payments: int, prefix: str, seed: int) -> Traffic:
    """About `payments` messages, two thirds in GBP, the rest in EUR, in one random order."""
    by_currency: dict[str, list[Account]] = defaultdict(list)
    for account in bank.accounts:
        by_currency[account.currency].append(account)
    gbp = mixed_traffic(by_currency["GBP"], payments * 2 // 3, f"{prefix}-gbp", seed)
    eur = mixed_traffic(by_currency["EUR"], payments - payments * 2 // 3, f"{prefix}-eur", seed + 1, "EUR")
    return Traffic(
        [*gbp.originals, *eur.originals], [*gbp.duplicates, *eur.duplicates], [*gbp.conflicts, *eur.conflicts]
    )


def identity(message: Message) -> Identity:
    task, kwargs = message
    kind = TYPES[task]
    source = kwargs.get("source") or (kwargs["account"] if kind == "withdrawal" else None)
    destination = kwargs.get("destination") or (kwargs["account"] if kind == "deposit" else None)
    return kind, source, destination, f"{Decimal(kwargs['amount']):.2f}", kwargs["currency"]


def outcome_identity(outcome: Outcome) -> Identity:
    kind, amount, currency = outcome.type, outcome.amount, outcome.currency
    if kind is None or amount is None or currency is None:
        raise AssertionError(f"{outcome.reference}: recorded without its type, amount or currency: {outcome}")
    return kind, outcome.source, outcome.destination, amount, currency


class Sender(threading.Thread):
    """Sends messages at a steady pace over `seconds`, as upstream traffic arrives, riding out broker outages.

    A send that fails is sent again with the same reference and payload, as NotSent tells a sender to: it may have
    reached the broker anyway, which makes it one more duplicate, never a second payment.
    """

    def __init__(self, broker_url: str, messages: Sequence[Message], seconds: float) -> None:
        super().__init__(name="faults-sender", daemon=True)
        self.app = Celery("faults-sender", broker=broker_url)
        self.app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
        self.messages = list(messages)
        self.seconds = seconds
        self.send_errors = 0
        self.error: BaseException | None = None
        # When each reference's messages went out, to tell how close to a fault a lost one was sent.
        self.sent_at: dict[str, list[float]] = defaultdict(list)

    def run(self) -> None:
        try:
            bursts = 20
            size = -(-len(self.messages) // bursts)
            started = time.monotonic()
            for number in range(bursts):
                for message in self.messages[number * size : (number + 1) * size]:
                    self.send(message)
                pause = started + self.seconds * (number + 1) / bursts - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        except BaseException as error:
            self.error = error

    def send(self, message: Message, patience: float = 60.0) -> None:
        task, kwargs = message
        deadline = time.monotonic() + patience
        while True:
            try:
                self.app.send_task(task, kwargs=kwargs, queue=QUEUE, serializer="json")
                self.sent_at[kwargs["reference"]].append(time.monotonic())
                return
            except kombu.exceptions.OperationalError:
                self.send_errors += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def finish(self, timeout: float = 90.0) -> None:
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the sender did not finish within {timeout} s")
        if self.error is not None:
            raise AssertionError(f"the sender failed: {self.error!r}") from self.error

    def close(self) -> None:
        self.app.close()


def wait_until_quiet(
    broker_url: str, workers: Sequence[Worker], timeout: float = 120.0, tend: Callable[[], None] = lambda: None
) -> None:
    """Nothing queued or unacked for a whole second: every message sent so far has run to its end.

    A second, because kombu pops a message and records it as unacked in two steps: one glance could fall between.
    """
    quiet_since: list[float] = []

    def quiet() -> bool:
        tend()
        if not broker_is_idle(broker_url):
            quiet_since.clear()
            return False
        quiet_since.append(time.monotonic())
        return quiet_since[-1] - quiet_since[0] >= 1.0

    wait_until(quiet, timeout, "every message run and acked", workers)


@dataclass
class Tally:
    """One row of the table of faults and outcomes."""

    fault: str
    sent: int = 0
    references: int = 0
    applied: int = 0
    rejected: int = 0
    duplicates: int = 0
    conflicts: int = 0
    held: int = 0
    unaccounted: int = 0
    untraced: str = ""
    resent: int = 0
    lost: int = 0
    doubled: int = 0
    verify: str = "not run"
    seconds: float = 0.0
    bites: str = ""


TABLE: list[Tally] = []
COLUMNS = (
    ("fault", "fault"),
    ("sent", "payments sent"),
    ("references", "references"),
    ("applied", "applied"),
    ("rejected", "rejected"),
    ("duplicates", "duplicates"),
    ("conflicts", "conflicts"),
    ("held", "held"),
    ("unaccounted", "no trace before resend"),
    ("resent", "resent"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("verify", "verify"),
    ("seconds", "seconds"),
    ("bites", "the fault struck"),
    ("untraced", "references with no trace, sent"),
)


def render_table(rows: Sequence[Tally], seed: int) -> str:
    """The table as Markdown."""
    lines = [
        f"Fault suite, seed {seed}",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = [
            f"{value:.0f}" if isinstance(value := getattr(row, name), float) else str(value) for name, _ in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Run:
    """One fault's run of the workload: what was sent, and the checks once everything has settled."""

    make_uow: UowFactory
    database_url: str
    broker_url: str
    bank: Bank
    traffic: Traffic
    # The traffic in the order it is sent: originals, duplicates and reused references shuffled together.
    messages: list[Message]
    tally: Tally
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    sender: Sender | None = None
    # When the fault struck (time.monotonic()), each time.
    strikes: list[float] = field(default_factory=list)

    def send(self, seconds: float) -> Sender:
        """Start sending the workload, spread over `seconds`; the fault's moments count from now."""
        self.sender = Sender(self.broker_url, self.messages, seconds)
        self.started = time.monotonic()
        self.sender.start()
        return self.sender

    def at(self, offset: float) -> None:
        """Sleep until `offset` seconds after the run started (at once if that has passed)."""
        time.sleep(max(0.0, self.started + offset - time.monotonic()))

    def payloads(self) -> dict[str, set[Identity]]:
        """Every payload the workload sent under each reference."""
        sent: dict[str, set[Identity]] = defaultdict(set)
        for message in self.messages:
            sent[message[1]["reference"]].add(identity(message))
        return sent

    def settle(self, workers: Sequence[Worker], may_lose: int = 0, tend: Callable[[], None] = lambda: None) -> None:
        """Wait for everything sent to run, resend what has no outcome, wait again, then check the books.

        `may_lose` is how many messages the fault may have lost without a trace (a SIGKILL between kombu's pop and
        its unacked record, celery/celery#7950): at most that many references may need the resend to apply.
        `tend` is called while waiting, for a supervisor that restarts a worker which stopped.
        """
        self.tally.sent = len(self.messages)
        self.tally.references = len(self.traffic.references)
        self.tally.duplicates = len(self.traffic.duplicates)
        sender = self.sender
        assert sender is not None, "settle() before send()"
        sender.finish()
        wait_until_quiet(self.broker_url, workers, tend=tend)
        references = self.traffic.references
        outcomes = get_outcomes(self.make_uow(), references)
        held = {h.reference for h in list_held(self.make_uow(), limit=10_000)} & set(references)
        without = [r for r in references if outcomes[r].status is OutcomeStatus.PENDING]
        unaccounted = [r for r in without if r not in held]
        self.tally.held = len(held)
        self.tally.unaccounted = len(unaccounted)
        if unaccounted:
            self.tally.untraced = ", ".join(self._before_strike(sender, r) for r in unaccounted)
        originals = {kwargs["reference"]: (task, kwargs) for task, kwargs in self.traffic.originals}
        for reference in without:
            sender.send(originals[reference])
        self.tally.resent = len(without)
        if without:
            self._wait_for_outcomes(references, workers, tend)
            wait_until_quiet(self.broker_url, workers, tend=tend)
        self.check(may_lose, unaccounted)
        self.tally.seconds = time.monotonic() - self.started

    def _before_strike(self, sender: Sender, reference: str) -> str:
        """How long before the next strike the reference was last sent: a message lost in kombu's gap between pop
        and unacked record was popped, so sent, just before the kill."""
        gaps = [strike - at for at in sender.sent_at[reference] for strike in self.strikes if strike >= at]
        return f"{reference} sent {min(gaps):.3f} s before a strike" if gaps else f"{reference} sent after the strikes"

    def _wait_for_outcomes(
        self, references: list[str], workers: Sequence[Worker], tend: Callable[[], None], timeout: float = 60.0
    ) -> None:
        def settled() -> bool:
            tend()
            outcomes = get_outcomes(self.make_uow(), references).values()
            return all(o.status is not OutcomeStatus.PENDING for o in outcomes)

        wait_until(settled, timeout, "an outcome for every resent reference", workers)

    def check(self, may_lose: int, unaccounted: list[str]) -> None:
        """Exactly one effect per reference, the model's balances, money conserved, conflicts recorded, verify."""
        references = self.traffic.references
        outcomes = get_outcomes(self.make_uow(), references)
        sent = self.payloads()
        statuses = Counter(o.status for o in outcomes.values())
        self.tally.applied = statuses[OutcomeStatus.APPLIED]
        self.tally.rejected = statuses[OutcomeStatus.REJECTED]
        self.tally.conflicts = sum(len(o.conflicts) for o in outcomes.values())

        lost = [r for r in references if outcomes[r].status is OutcomeStatus.PENDING]
        self.tally.lost = len(lost)
        for reference in lost:
            self.problems.append(f"{reference}: no outcome even after the resend (sent: {sorted(sent[reference])})")

        missing_conflicts = 0
        for reference, outcome in outcomes.items():
            if outcome.status is OutcomeStatus.PENDING:
                continue
            if outcome.status is OutcomeStatus.APPLIED and outcome_identity(outcome) not in sent[reference]:
                self.problems.append(
                    f"{reference}: applied {outcome_identity(outcome)}, which was never sent"
                    f" (sent: {sorted(sent[reference])})"
                )
            expected = len(sent[reference]) - 1
            if len(outcome.conflicts) > expected:
                self.problems.append(
                    f"{reference}: {len(outcome.conflicts)} conflicts recorded, but only {expected} other payloads sent"
                )
            missing_conflicts += expected - len(outcome.conflicts) if len(outcome.conflicts) < expected else 0
            if len(outcome.conflicts) < expected and may_lose == 0:
                self.problems.append(
                    f"{reference}: {len(sent[reference])} payloads sent, so {expected} conflict(s) expected,"
                    f" {len(outcome.conflicts)} recorded"
                )
        if len(unaccounted) + missing_conflicts > may_lose:
            self.problems.append(
                f"{len(unaccounted)} reference(s) had neither an outcome nor a hold before the resend"
                f" ({unaccounted[:10]}) and {missing_conflicts} reused reference(s) no conflict record; this fault may"
                f" lose at most {may_lose} message(s) without a trace (celery/celery#7950)"
            )

        self._check_entries(outcomes)
        self._check_balances(outcomes)
        self._check_money(outcomes)
        self._check_verify()

    def _check_entries(self, outcomes: dict[str, Outcome]) -> None:
        """Two entries summing to zero for every applied payment, none for a rejected one, no rows from elsewhere."""
        query = sqlalchemy.text(
            "SELECT t.reference, t.status, count(e.id), coalesce(sum(e.amount), 0) FROM transactions t"
            " LEFT JOIN ledger_entries e ON e.transaction_id = t.id GROUP BY t.id"
        )
        with get_engine(self.database_url).connect() as connection:
            rows = connection.execute(query).all()
        doubled = 0
        for reference, status, entries, total in rows:
            if reference in self.bank.setup_references:
                continue
            if reference not in outcomes:
                self.problems.append(f"{reference}: recorded ({status}) but the workload never sent it")
                continue
            expected = 2 if status == OutcomeStatus.APPLIED else 0
            if entries != expected or total != 0:
                doubled += entries > expected
                self.problems.append(
                    f"{reference}: {status} with {entries} ledger entries summing to {total}; expected {expected}"
                    " summing to 0"
                )
        self.tally.doubled = doubled

    def _check_balances(self, outcomes: dict[str, Outcome]) -> None:
        """Each account moved by exactly its applied payments, from the balance it had before the workload."""
        expected = {a.number: a.balance for a in self.bank.accounts}
        for outcome in outcomes.values():
            if outcome.status is not OutcomeStatus.APPLIED:
                continue
            _, source, destination, amount, _ = outcome_identity(outcome)
            if source is not None:
                expected[source] -= Decimal(amount)
            if destination is not None:
                expected[destination] += Decimal(amount)
        for number, balance in expected.items():
            actual = get_account(self.make_uow(), number).balance
            if actual != balance:
                self.problems.append(
                    f"account {number}: balance {actual}, the model says {balance} (off by {actual - balance})"
                )

    def _check_money(self, outcomes: dict[str, Outcome]) -> None:
        """Per currency: customer balances moved by deposits less withdrawals applied; the whole ledger sums to 0."""
        moved: dict[str, Decimal] = defaultdict(Decimal)
        for outcome in outcomes.values():
            if outcome.status is OutcomeStatus.APPLIED:
                kind, _, _, amount, currency = outcome_identity(outcome)
                sign = {"deposit": 1, "withdrawal": -1}.get(kind, 0)
                moved[currency] += sign * Decimal(amount)
        opening: dict[str, Decimal] = defaultdict(Decimal)
        for account in self.bank.accounts:
            opening[account.currency] += account.balance
        query = sqlalchemy.text(
            "SELECT a.currency, sum(a.balance) FILTER (WHERE a.type <> 'settlement'),"
            " (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e JOIN accounts b ON b.id = e.account_id"
            "  WHERE b.currency = a.currency)"
            " FROM accounts a GROUP BY a.currency"
        )
        with get_engine(self.database_url).connect() as connection:
            for currency, customers, ledger in connection.execute(query):
                if customers != opening[currency] + moved[currency]:
                    self.problems.append(
                        f"{currency}: customer balances sum to {customers}, but {opening[currency]} opening plus"
                        f" {moved[currency]} deposited less withdrawn is {opening[currency] + moved[currency]}"
                    )
                if ledger != 0:
                    self.problems.append(f"{currency}: the ledger's entries sum to {ledger}, not 0")

    def _check_verify(self) -> None:
        result = subprocess.run(
            [PROCESSOR, "verify"],
            env={**os.environ, "DATABASE_URL": self.database_url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.tally.verify = "ok" if result.returncode == 0 else f"exit {result.returncode}"
        if result.returncode != 0:
            self.problems.append(f"processor verify exited {result.returncode}: {result.stdout}{result.stderr}")

    def expect(self, struck: bool, what: str) -> None:
        """A fault that never struck tests nothing: say so rather than pass."""
        self.tally.bites = what
        if not struck:
            self.problems.append(f"the fault never struck: {what}")

    def verdict(self, replay: str, workers: Callable[[], str]) -> str:
        """The failure message: every problem, how to replay the run, the end of the workers' logs."""
        shown = "\n".join(self.problems[:40])
        more = f"\n...and {len(self.problems) - 40} more" if len(self.problems) > 40 else ""
        return f"{self.tally.fault} ({replay}):\n{shown}{more}\n--- workers ---\n{workers()[-6000:]}"


def random_moments(rng: random.Random, count: int, start: float, end: float) -> list[float]:
    """`count` offsets in seconds, sorted, spread at random over [start, end)."""
    return sorted(rng.uniform(start, end) for _ in range(count))
