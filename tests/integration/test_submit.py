"""The producer side: the `submit` client and CLI put contract messages on Redis and read outcomes back.

No worker runs here: the tests read the queued messages straight from the run's Redis database, and apply a
payment, when one needs an outcome, through the same service a worker calls.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from click.testing import Result

import processor.celery
from processor.config import get_settings
from processor.domain.accounts import make_account_number
from processor.domain.book import Policy
from processor.domain.errors import InvalidValue
from processor.domain.outcomes import OutcomeStatus, Reason
from processor.domain.requests import REFERENCE_PATTERN
from processor.messages import QUEUE, Deposit, read
from processor.services.payments import apply_payments
from submit import Client, InvalidRequest, NotSent
from submit.cli import cli
from tests.builders import UowFactory, make_account, pay
from tests.clis import error_line, invoke, invoke_json, mistype
from tests.requests import unique, withdrawal

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("submit"))
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
UNKNOWN_ACCOUNT = make_account_number(99999999)  # well-formed, never opened
OUTCOME_KEYS = {"reference", "status", "reason", "type", "amount", "currency", "source", "destination", "conflicts"}


@dataclass(frozen=True)
class Queued:
    """A Celery protocol-2 message as it waits on the Redis list."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    content_type: str


@pytest.fixture
def queue(broker_url: str) -> Iterator[redis.Redis]:
    """The run's Redis database, with the payments list empty before and after each test."""
    client = redis.Redis.from_url(broker_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


def queued(queue: redis.Redis) -> list[Queued]:
    """The messages on the payments list, oldest first (kombu pushes on the left)."""
    messages = []
    for raw in reversed(queue.lrange(QUEUE, 0, -1)):
        envelope = json.loads(raw)
        args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append(Queued(envelope["headers"]["task"], args, kwargs, envelope["content-type"]))
    return messages


def apply_queued(make_uow: UowFactory, message: Queued) -> None:
    """What a worker does with the message: read it, then apply it."""
    request = read(message.task, message.args, message.kwargs)
    apply_payments(make_uow(), [request], Policy())


@pytest.fixture
def client(broker_url: str, database_url: str, queue: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    # Celery prefers CELERY_BROKER_URL from the environment to the broker it is given, so a developer's own
    # setting would otherwise send these messages elsewhere.
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    app = Celery("test-producer", broker=broker_url)
    app.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    yield Client(app=app, database_url=database_url)
    app.close()


@pytest.fixture
def cli_broker(
    broker_url: str, database_url: str, queue: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Point the in-process `submit` CLI at the test broker and database.

    The CLI's Client uses processor.celery.app, made once per process: it reads CELERY_BROKER_URL until its first
    send, and keeps that connection after. So each test gets an app of its own, made the production way from the
    test's settings.
    """
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    app = processor.celery.make_app(get_settings())
    monkeypatch.setattr(processor.celery, "app", app)
    yield
    app.close()
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return invoke(cli, *args)


def run_json(*args: str) -> Any:
    return invoke_json(cli, *args)


def run_script(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed `submit` script, run as a user runs it: a fresh process that reads its settings from env."""
    return subprocess.run(
        [CONSOLE_SCRIPT, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestClientSend:
    def test_deposit_queues_one_message_by_task_name_with_the_contract_kwargs(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        reference = client.deposit(account.number, "125.50", currency="GBP", reference="dep-1", description="pay")

        assert reference == "dep-1"
        assert queued(queue) == [
            Queued(
                "payments.deposit",
                [],
                {
                    "reference": "dep-1",
                    "account": account.number,
                    "amount": "125.50",
                    "currency": "GBP",
                    "description": "pay",
                },
                "application/json",
            )
        ]

    def test_withdraw_queues_one_message_with_the_default_currency(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        client.withdraw(account.number, 10, reference="wd-1")

        assert queued(queue) == [
            Queued(
                "payments.withdraw",
                [],
                {"reference": "wd-1", "account": account.number, "amount": "10.00", "currency": "GBP"},
                "application/json",
            )
        ]

    def test_transfer_queues_one_message_naming_both_accounts(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        source, destination = make_account(make_uow), make_account(make_uow)

        client.transfer(source.number, destination.number, "0.01", currency="GBP", reference="tr-1")

        assert queued(queue) == [
            Queued(
                "payments.transfer",
                [],
                {
                    "reference": "tr-1",
                    "source": source.number,
                    "destination": destination.number,
                    "amount": "0.01",
                    "currency": "GBP",
                },
                "application/json",
            )
        ]

    def test_generated_references_are_returned_valid_and_unique(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        references = [client.deposit(account.number, "1.00") for _ in range(3)]

        assert len(set(references)) == 3
        assert all(REFERENCE_PATTERN.fullmatch(r) for r in references)
        assert [m.kwargs["reference"] for m in queued(queue)] == references

    def test_invalid_request_raises_and_queues_nothing(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        with pytest.raises(InvalidRequest) as caught:
            client.deposit(mistype(account.number), "1.234", reference="bad-1")

        assert {e.field for e in caught.value.errors} == {"account", "amount"}
        assert caught.value.reference == "bad-1"
        assert queue.llen(QUEUE) == 0


class TestClientNotSent:
    @pytest.mark.parametrize("kind", ["single", "batch"])
    def test_a_send_that_fails_raises_with_the_generated_reference(
        self, kind: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # client.deposit and the others generate the reference and call send_message: the caller learns it here.
        # Celery reads CELERY_BROKER_URL before the broker it is given, and this run's may be set.
        monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
        app = Celery("unreachable", broker=UNREACHABLE_BROKER)
        app.conf.update(broker_connection_retry=False, broker_connection_max_retries=0)
        client = Client(app)

        message = client.message(Deposit, "1.00", account=make_account_number(20000001))
        send = client.send_message if kind == "single" else lambda m: client.send_batch([m])

        with pytest.raises(NotSent) as caught:
            send(message)

        assert caught.value.reference == message.reference
        assert message.reference.startswith("ref-")
        assert caught.value.references == [message.reference]
        assert caught.value.reference in str(caught.value)
        assert "send again with the same reference" in str(caught.value)
        app.close()


class TestClientStatus:
    def test_unknown_reference_is_pending(self, client: Client) -> None:
        outcome = client.status("never-sent")

        assert outcome.reference == "never-sent"
        assert outcome.status is OutcomeStatus.PENDING

    def test_sent_and_applied_deposit_is_applied(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)
        reference = client.deposit(account.number, "40.00")
        [message] = queued(queue)

        apply_queued(make_uow, message)

        outcome = client.status(reference)
        assert outcome.status is OutcomeStatus.APPLIED
        assert (outcome.type, outcome.amount, outcome.destination) == ("deposit", "40.00", account.number)

    def test_outcomes_of_many_references_at_once(
        self, client: Client, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow, balance="5.00")
        applied = client.deposit(account.number, "1.00")
        rejected = client.withdraw(account.number, "100.00")
        for message in queued(queue):
            apply_queued(make_uow, message)

        outcomes = client.outcomes([applied, rejected, "never-sent"])

        assert {r: (o.status, o.reason) for r, o in outcomes.items()} == {
            applied: (OutcomeStatus.APPLIED, None),
            rejected: (OutcomeStatus.REJECTED, Reason.INSUFFICIENT_FUNDS),
            "never-sent": (OutcomeStatus.PENDING, None),
        }

    def test_unreadable_reference_is_refused(self, client: Client) -> None:
        with pytest.raises(InvalidValue) as caught:
            client.status("not a reference")

        assert caught.value.field == "reference"


class TestClientWait:
    def test_gives_up_pending_after_the_timeout_when_nothing_is_applied(self, client: Client) -> None:
        started = time.monotonic()

        outcome = client.wait("never-sent", timeout=0.5, interval=0.05)

        assert outcome.status is OutcomeStatus.PENDING
        assert 0.5 <= time.monotonic() - started < 5

    def test_returns_at_once_when_an_outcome_is_recorded(self, client: Client, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="5.00")
        pay(make_uow, withdrawal(account.number, "2.00", reference="wd-waited"))
        started = time.monotonic()

        outcome = client.wait("wd-waited", timeout=30)

        assert outcome.status is OutcomeStatus.APPLIED
        assert time.monotonic() - started < 5


@pytest.mark.usefixtures("cli_broker")
class TestSubmitSend:
    def test_deposit_prints_the_reference_and_pending_and_queues_it(
        self, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        data = run_json("deposit", "--account", account.number, "--amount", "125.50", "--reference", "cli-dep-1")

        assert data == {"reference": "cli-dep-1", "status": "pending"}
        [message] = queued(queue)
        assert message.task == "payments.deposit"
        assert message.kwargs == {
            "reference": "cli-dep-1",
            "account": account.number,
            "amount": "125.50",
            "currency": "GBP",
        }

    def test_deposit_without_reference_prints_a_generated_one(self, queue: redis.Redis, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        data = run_json("deposit", "--account", account.number, "--amount", "3")

        assert REFERENCE_PATTERN.fullmatch(data["reference"])
        assert [m.kwargs["reference"] for m in queued(queue)] == [data["reference"]]

    def test_withdraw_queues_a_withdrawal(self, queue: redis.Redis, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        run_json("withdraw", "--account", account.number, "--amount", "1.00", "--currency", "GBP")

        assert [(m.task, m.kwargs["account"]) for m in queued(queue)] == [("payments.withdraw", account.number)]

    def test_transfer_queues_a_transfer(self, queue: redis.Redis, make_uow: UowFactory) -> None:
        source, destination = make_account(make_uow), make_account(make_uow)

        run_json("transfer", "--source", source.number, "--destination", destination.number, "--amount", "2.50")

        [message] = queued(queue)
        assert message.task == "payments.transfer"
        assert (message.kwargs["source"], message.kwargs["destination"]) == (source.number, destination.number)

    def test_mistyped_account_number_fails_with_one_line_and_queues_nothing(
        self, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        result = run("deposit", "--account", mistype(account.number), "--amount", "10", "--json")

        assert result.exit_code == 1
        assert error_line(result.stderr).startswith("error: account: ")
        assert "check digit" in result.stderr
        assert result.stdout == ""
        assert queue.llen(QUEUE) == 0

    @pytest.mark.parametrize("amount", ["1.234", "abc", "-5", "0"])
    def test_malformed_amount_fails_with_one_line_and_queues_nothing(
        self, queue: redis.Redis, make_uow: UowFactory, amount: str
    ) -> None:
        account = make_account(make_uow)

        result = run("withdraw", "--account", account.number, "--amount", amount, "--json")

        assert result.exit_code == 1
        assert error_line(result.stderr).startswith("error: amount: ")
        assert queue.llen(QUEUE) == 0

    @pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "1e400"])
    def test_a_timeout_that_is_not_a_finite_number_of_seconds_is_a_usage_error(
        self, queue: redis.Redis, make_uow: UowFactory, timeout: str
    ) -> None:
        account = make_account(make_uow)

        result = run("deposit", "--account", account.number, "--amount", "1.00", "--wait", "--timeout", timeout)

        assert result.exit_code == 2
        assert "--timeout" in result.stderr
        assert queue.llen(QUEUE) == 0

    @pytest.mark.parametrize("option", ["--timeout", "--resend-after"])
    def test_a_file_wait_that_is_not_a_finite_number_of_seconds_is_a_usage_error(
        self, queue: redis.Redis, tmp_path: Path, option: str
    ) -> None:
        path = tmp_path / "payments.csv"
        path.write_text("reference,type,source,destination,amount,currency,description\n")

        result = run("file", str(path), "--wait", option, "nan")

        assert result.exit_code == 2
        assert option in result.stderr
        assert queue.llen(QUEUE) == 0

    @pytest.mark.parametrize("same", ["the path", "a link to it"])
    def test_outcomes_to_the_payment_file_itself_is_refused_and_the_file_kept(
        self, queue: redis.Redis, tmp_path: Path, same: str
    ) -> None:
        path = tmp_path / "payments.csv"
        content = "reference,type,source,destination,amount,currency,description\n"
        path.write_text(content)
        outcomes = path
        if same == "a link to it":
            outcomes = tmp_path / "link.csv"
            outcomes.symlink_to(path)

        result = run("file", str(path), "--outcomes", str(outcomes))

        assert result.exit_code == 2
        assert "--outcomes names the payment file itself" in result.stderr
        assert path.read_text() == content
        assert queue.llen(QUEUE) == 0

    def test_missing_amount_is_a_usage_error(self, queue: redis.Redis, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = run("deposit", "--account", account.number, "--json")

        assert result.exit_code == 2
        assert "--amount" in result.stderr
        assert queue.llen(QUEUE) == 0

    def test_wait_without_a_worker_fails_saying_no_outcome(self, queue: redis.Redis, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = run(
            "deposit",
            "--account",
            account.number,
            "--amount",
            "1",
            "--reference",
            "no-worker",
            "--wait",
            "--timeout",
            "1",
        )

        assert result.exit_code == 1
        line = error_line(result.stderr)
        assert "no outcome for no-worker" in line
        assert "is a worker running?" in line
        assert queue.llen(QUEUE) == 1

    def test_wait_without_a_worker_prints_the_pending_outcome_as_json(
        self, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        account = make_account(make_uow)

        result = run("deposit", "--account", account.number, "--amount", "1", "--wait", "--timeout", "0.2", "--json")

        assert result.exit_code == 1
        assert json.loads(result.stdout)["status"] == "pending"
        assert "no outcome" in error_line(result.stderr)


@pytest.mark.usefixtures("cli_broker")
class TestSubmitStatus:
    def test_markup_and_escape_sequences_a_sender_wrote_are_shown_not_obeyed(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        kwargs = {"reference": "st-x", "account": account.number, "amount": "1.00", "currency": "[bold]\x1b[2JX[/]"}
        apply_payments(make_uow(), [read("payments.deposit", (), kwargs)], Policy())

        result = run("status", "st-x")

        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout
        assert "'[bold]\\x1b[2JX[/]' is not an ISO 4217 code" in result.stdout

    def test_applied_transfer_shows_the_outcome_shape_of_the_contract(
        self, queue: redis.Redis, make_uow: UowFactory
    ) -> None:
        source = make_account(make_uow, balance="50.00")
        destination = make_account(make_uow)
        run_json(
            "transfer",
            "--source",
            source.number,
            "--destination",
            destination.number,
            "--amount",
            "20",
            "--reference",
            "st-1",
        )
        [message] = queued(queue)
        apply_queued(make_uow, message)

        data = run_json("status", "st-1")

        assert set(data) >= OUTCOME_KEYS
        assert {k: data[k] for k in OUTCOME_KEYS} == {
            "reference": "st-1",
            "status": "applied",
            "reason": None,
            "type": "transfer",
            "amount": "20.00",
            "currency": "GBP",
            "source": source.number,
            "destination": destination.number,
            "conflicts": [],
        }

    def test_rejected_payment_shows_its_reason_and_exits_0(self, make_uow: UowFactory) -> None:
        pay(make_uow, withdrawal(UNKNOWN_ACCOUNT, "1.00", reference="st-rejected"))

        data = run_json("status", "st-rejected")

        assert (data["status"], data["reason"]) == ("rejected", "account_not_found")

    def test_conflicting_resend_is_listed_with_the_fields_that_differ(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="50.00")
        pay(make_uow, withdrawal(account.number, "1.00", reference="st-conflict"))
        pay(make_uow, withdrawal(account.number, "2.00", reference="st-conflict"))

        data = run_json("status", "st-conflict")

        assert data["amount"] == "1.00"
        assert [c["fields"] for c in data["conflicts"]] == [["amount"]]

    def test_conflict_in_the_table_says_when_in_whole_seconds_and_what_differed(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, balance="50.00")
        pay(make_uow, withdrawal(account.number, "1.00", reference="st-conflict-table"))
        pay(make_uow, withdrawal(account.number, "2.00", reference="st-conflict-table"))
        [conflict] = run_json("status", "st-conflict-table")["conflicts"]

        result = run("status", "st-conflict-table")

        assert result.exit_code == 0, result.stderr
        at = datetime.fromisoformat(conflict["at"]).replace(microsecond=0).isoformat()
        [line] = [line for line in result.stdout.splitlines() if line.strip().startswith("conflict")]
        assert line.split(maxsplit=1)[1].rstrip() == f"an attempt at {at} with amount 2.00: not applied"

    def test_unknown_reference_is_pending(self) -> None:
        data = run_json("status", "never-sent")

        assert {k: data[k] for k in OUTCOME_KEYS} == {
            "reference": "never-sent",
            "status": "pending",
            "reason": None,
            "type": None,
            "amount": None,
            "currency": None,
            "source": None,
            "destination": None,
            "conflicts": [],
        }

    def test_unreadable_reference_fails_with_one_line(self) -> None:
        result = run("status", "not a reference", "--json")

        assert result.exit_code == 1
        assert error_line(result.stderr).startswith("error: reference: ")


class TestSubmitConsoleScript:
    """The installed `submit` script: a fresh process that reads CELERY_BROKER_URL and DATABASE_URL itself."""

    def test_deposit_goes_to_the_broker_named_in_the_environment(
        self, broker_url: str, database_url: str, queue: redis.Redis, make_uow: UowFactory, tmp_path: Path
    ) -> None:
        account = make_account(make_uow)
        reference = unique("script")

        completed = run_script(
            "deposit",
            "--account",
            account.number,
            "--amount",
            "9.99",
            "--reference",
            reference,
            "--json",
            cwd=tmp_path,
            CELERY_BROKER_URL=broker_url,
            DATABASE_URL=database_url,
        )

        assert completed.returncode == 0, completed.stderr
        assert json.loads(completed.stdout) == {"reference": reference, "status": "pending"}
        assert [(m.task, m.kwargs["reference"]) for m in queued(queue)] == [("payments.deposit", reference)]

    def test_unreachable_broker_is_one_line_naming_the_variable(
        self, database_url: str, make_uow: UowFactory, tmp_path: Path
    ) -> None:
        account = make_account(make_uow)

        completed = run_script(
            "deposit",
            "--account",
            account.number,
            "--amount",
            "1",
            "--json",
            cwd=tmp_path,
            CELERY_BROKER_URL=UNREACHABLE_BROKER,
            DATABASE_URL=database_url,
        )

        assert completed.returncode == 69  # EX_UNAVAILABLE
        line = error_line(completed.stderr)
        assert "CELERY_BROKER_URL" in line
        assert UNREACHABLE_BROKER in line
        assert completed.stdout == ""
