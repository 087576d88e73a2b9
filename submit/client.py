"""The producer API for upstream systems: validate a payment request, enqueue it, read its outcome.

from submit import Client
client = Client()
reference = client.transfer("100000011", "100000022", "25.00")
outcome = client.wait(reference)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import kombu.exceptions
from celery import Celery
from kombu.messaging import Producer

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.domain.errors import Unavailable
from processor.domain.outcomes import Outcome, OutcomeStatus
from processor.domain.requests import parse_reference
from processor.messages import BATCH_TASK, QUEUE, Deposit, PaymentMessage, Transfer, Withdrawal, batch_kwargs, build
from processor.services.payments import get_outcome, get_outcomes

Amount = str | int | Decimal


class NotSent(Unavailable):
    """Sending failed, and the message may or may not have reached the broker (a publish can succeed and still
    raise): send it again under the same references, which applies each once, never under new ones."""

    def __init__(self, references: Sequence[str], error: Exception) -> None:
        shown = references[0] if len(references) == 1 else f"{references[0]} and {len(references) - 1} more"
        super().__init__(
            f"could not send {shown} ({error}); send again with the same reference: if it did go, it applies once"
        )
        self.references = list(references)
        self.reference = references[0]


def new_reference() -> str:
    """A fresh reference for a sender that does not choose its own."""
    return f"ref-{uuid.uuid4().hex}"


class Client:
    """Sends payment requests to the workers' queue; each is validated first, so a bad one is never sent."""

    def __init__(self, app: Celery | None = None, database_url: str | None = None, queue: str = QUEUE) -> None:
        if app is None:
            from processor.celery import app as default_app

            app = default_app
        self.app = app
        self.database_url = database_url
        self.queue = queue
        self.default_currency = get_settings().default_currency

    def deposit(
        self,
        account: str,
        amount: Amount,
        currency: str | None = None,
        reference: str | None = None,
        description: str | None = None,
    ) -> str:
        """Enqueue a deposit into `account`; returns its reference. Raises InvalidRequest before sending."""
        return self.send_message(self.message(Deposit, amount, currency, reference, description, account=account))

    def withdraw(
        self,
        account: str,
        amount: Amount,
        currency: str | None = None,
        reference: str | None = None,
        description: str | None = None,
    ) -> str:
        """Enqueue a withdrawal from `account`; returns its reference. Raises InvalidRequest before sending."""
        message = self.message(Withdrawal, amount, currency, reference, description, account=account)
        return self.send_message(message)

    def transfer(
        self,
        source: str,
        destination: str,
        amount: Amount,
        currency: str | None = None,
        reference: str | None = None,
        description: str | None = None,
    ) -> str:
        """Enqueue a transfer; returns its reference. Raises InvalidRequest before sending."""
        message = self.message(
            Transfer, amount, currency, reference, description, source=source, destination=destination
        )
        return self.send_message(message)

    def message(
        self,
        kind: type[PaymentMessage],
        amount: Amount,
        currency: str | None = None,
        reference: str | None = None,
        description: str | None = None,
        **accounts: str,
    ) -> PaymentMessage:
        """A validated message, with a new reference and the default currency where none is given."""
        fields: dict[str, Any] = {
            "reference": new_reference() if reference is None else reference,
            "amount": amount,
            "currency": currency or self.default_currency,
            **accounts,
        }
        if description:
            fields["description"] = description
        return build(kind, **fields)

    def send_message(self, message: PaymentMessage, producer: Producer | None = None) -> str:
        """Enqueue a message already validated; returns its reference. Raises NotSent, carrying the reference."""
        try:
            self.app.send_task(message.task, kwargs=message.kwargs(), queue=self.queue, producer=producer)
        except kombu.exceptions.OperationalError as error:
            raise NotSent([message.reference], error) from error
        return message.reference

    def send_batch(self, messages: Sequence[PaymentMessage], producer: Producer | None = None) -> list[str]:
        """Enqueue up to 1,000 validated messages as one payments.batch message; returns their references.

        The worker applies them in one transaction, each with its own outcome, exactly as if sent alone.
        """
        references = [message.reference for message in messages]
        try:
            self.app.send_task(BATCH_TASK, kwargs=batch_kwargs(messages), queue=self.queue, producer=producer)
        except kombu.exceptions.OperationalError as error:
            raise NotSent(references, error) from error
        return references

    @contextmanager
    def producer(self) -> Iterator[Producer]:
        """One broker connection for many sends (pass it to send_message), instead of one from the pool each."""
        with self.app.producer_or_acquire() as producer:
            yield producer

    def status(self, reference: str) -> Outcome:
        """The outcome recorded for a reference, or a pending one."""
        return get_outcome(unit_of_work(self.database_url), parse_reference(reference))

    def outcomes(self, references: Collection[str]) -> dict[str, Outcome]:
        """The outcomes of many references at once; pending for those with none recorded yet."""
        return get_outcomes(unit_of_work(self.database_url), [parse_reference(r) for r in references])

    def wait(self, reference: str, timeout: float = 30.0, interval: float = 0.2) -> Outcome:
        """The outcome of a reference once one is recorded; still pending if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = self.status(reference)
            if outcome.status is not OutcomeStatus.PENDING or time.monotonic() >= deadline:
                return outcome
            time.sleep(interval)
