"""Mixed payment traffic for end-to-end tests, and the checks that every reference had exactly one effect."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from celery import Celery

from processor.domain.accounts import Account
from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.messages import QUEUE
from processor.services.accounts import get_account
from processor.services.verify import verify_ledger
from tests.builders import UowFactory

Message = tuple[str, dict[str, str]]


@dataclass
class Traffic:
    """Messages to send: `originals` one per reference, plus resends of the same payload and conflicting ones."""

    originals: list[Message] = field(default_factory=list)
    duplicates: list[Message] = field(default_factory=list)
    conflicts: list[Message] = field(default_factory=list)

    @property
    def references(self) -> list[str]:
        return [kwargs["reference"] for _, kwargs in self.originals]

    def all(self, seed: int = 7) -> list[Message]:
        messages = [*self.originals, *self.duplicates, *self.conflicts]
        random.Random(seed).shuffle(messages)
        return messages


def mixed_traffic(accounts: list[Account], count: int, prefix: str, seed: int = 1, currency: str = "GBP") -> Traffic:
    """`count` messages: about 85% distinct requests, 10% exact resends and 5% same reference, other amount."""
    rng = random.Random(seed)
    numbers = [a.number for a in accounts]
    traffic = Traffic()
    while len(traffic.originals) + len(traffic.duplicates) + len(traffic.conflicts) < count:
        roll = rng.random()
        if traffic.originals and roll < 0.10:
            traffic.duplicates.append(rng.choice(traffic.originals))
            continue
        if traffic.originals and roll < 0.15:
            task, kwargs = rng.choice(traffic.originals)
            traffic.conflicts.append((task, {**kwargs, "amount": f"{Decimal(kwargs['amount']) + 1:.2f}"}))
            continue
        reference = f"{prefix}-{len(traffic.originals)}"
        amount = f"{rng.randint(1, 20000) / 100:.2f}"
        kind = rng.choice(["deposit", "withdraw", "transfer", "transfer"])
        if kind == "transfer":
            source, destination = rng.sample(numbers, 2)
            kwargs = {"source": source, "destination": destination}
        else:
            kwargs = {"account": rng.choice(numbers)}
        traffic.originals.append(
            (f"payments.{kind}", {"reference": reference, "amount": amount, "currency": currency, **kwargs})
        )
    return traffic


def send(producer: Celery, messages: list[Message]) -> None:
    with producer.producer_or_acquire() as connection:
        for task, kwargs in messages:
            producer.send_task(task, kwargs=kwargs, queue=QUEUE, producer=connection)


def assert_exactly_once(
    make_uow: UowFactory, accounts: list[Account], traffic: Traffic, outcomes: dict[str, Outcome]
) -> None:
    """One outcome per reference; each account moved by exactly its applied payments; the ledger balances."""
    assert sorted(outcomes) == sorted(traffic.references)
    assert all(o.status is not OutcomeStatus.PENDING for o in outcomes.values())
    expected = {a.number: a.balance for a in accounts}
    for outcome in outcomes.values():
        if outcome.status is OutcomeStatus.APPLIED:
            assert outcome.amount is not None
            amount = Decimal(outcome.amount)
            if outcome.source is not None:
                expected[outcome.source] -= amount
            if outcome.destination is not None:
                expected[outcome.destination] += amount
    actual = {a.number: get_account(make_uow(), a.number).balance for a in accounts}
    assert actual == expected
    assert verify_ledger(make_uow()) == []


def conflict_counts(outcomes: dict[str, Outcome]) -> Counter[str]:
    return Counter({reference: len(o.conflicts) for reference, o in outcomes.items() if o.conflicts})
