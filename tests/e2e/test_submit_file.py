"""`submit file` end to end: the installed command, real Redis, real PostgreSQL and real `celery -A processor worker`.

docs/architecture.md: every row is validated before anything is sent, each new valid payment is sent once, and
with --wait the command ends when every sent row has an outcome, re-sending with the same reference what has none
after --resend-after. Exit 0 when every row was valid and had its outcome, 1 otherwise, 2 for a usage error or an
unreadable file.
"""

from __future__ import annotations

import random
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from processor.domain.accounts import Account
from processor.domain.outcomes import OutcomeStatus
from processor.domain.requests import PaymentRequest
from processor.messages import QUEUE
from processor.services.payments import get_outcome, get_outcomes
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, make_account
from tests.clis import error_line, mistype
from tests.e2e.conftest import StartWorker
from tests.e2e.payment_files import (
    UNACKED,
    Line,
    SubmitProcess,
    balances,
    broker_is_idle,
    environment,
    expected_balances,
    file_row,
    flush_broker,
    read_outcomes,
    recorded,
    submit,
    wait_until,
    write_csv,
    write_jsonl,
)
from tests.requests import deposit, transfer, withdrawal

StartSubmit = Callable[..., SubmitProcess]
WAIT = ("--wait", "--timeout", "45", "--json")
VALID_CSV = b"reference,type,source,destination,amount,currency\nr-1,deposit,,100000011,1.00,GBP\n"
BAD_HEADER = b"ref,kind,from,to,amount,currency\nr-1,deposit,,100000011,1.00,GBP\n"


@pytest.fixture(autouse=True)
def broker(broker_url: str) -> Iterator[redis.Redis]:
    """The run's Redis database, its queue empty before and after each test.

    Autouse, so it is torn down after start_worker has stopped the workers (which give back what they reserved):
    no message of one test reaches the next one's worker, whose accounts may have the same numbers.
    """
    client = redis.Redis.from_url(broker_url)
    client.delete(QUEUE, UNACKED)
    yield client
    client.delete(QUEUE, UNACKED)
    client.close()


@pytest.fixture
def env(database_url: str, broker_url: str, tmp_path: Path) -> dict[str, str]:
    return environment(database_url, broker_url, tmp_path)


@pytest.fixture
def start_submit(env: dict[str, str], tmp_path: Path) -> Iterator[StartSubmit]:
    """Start `submit ARGS` in the background; whatever is still running at the end of the test is killed."""
    started: list[SubmitProcess] = []

    def start(*args: str) -> SubmitProcess:
        process = SubmitProcess(args, env, tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def prefix() -> str:
    """A reference prefix of the test's own."""
    return f"sf{uuid.uuid4().hex[:8]}-"


def random_payments(accounts: list[Account], count: int, prefix: str, seed: int = 3) -> list[PaymentRequest]:
    """Deposits, withdrawals and transfers of at most 50.00 each, so accounts funded with enough never refuse one."""
    rng = random.Random(seed)
    payments = []
    for number in range(count):
        reference, amount = f"{prefix}{number}", f"{rng.randint(1, 5000) / 100:.2f}"
        kind = rng.choice(["deposit", "withdrawal", "transfer", "transfer"])
        if kind == "transfer":
            source, destination = rng.sample(accounts, 2)
            payments.append(transfer(source, destination, amount, reference=reference))
        elif kind == "deposit":
            payments.append(deposit(rng.choice(accounts), amount, reference=reference))
        else:
            payments.append(withdrawal(rng.choice(accounts), amount, reference=reference))
    return payments


@dataclass(frozen=True)
class FileBench:
    """What a test of `submit file` works with: the bank's database, the broker, workers, and a prefix of its own."""

    make_uow: UowFactory
    database_url: str
    env: dict[str, str]
    broker: redis.Redis
    start_worker: StartWorker
    start_submit: StartSubmit
    prefix: str
    tmp_path: Path

    def open_accounts(self, count: int, balance: str) -> list[Account]:
        return [make_account(self.make_uow, balance=balance) for _ in range(count)]

    def wait_for_idle_broker(self) -> None:
        """Everything sent has been taken and acknowledged: what was sent has been recorded by now."""
        wait_until(lambda: broker_is_idle(self.broker), 30, "an empty queue and nothing unacknowledged")

    def assert_applied_once(self, accounts: list[Account], payments: list[PaymentRequest]) -> None:
        """One transactions row per payment, all applied, each account moved by exactly its payments, books balanced."""
        outcomes = get_outcomes(self.make_uow(), [p.reference for p in payments])
        assert {r: o.status for r, o in outcomes.items() if o.status is not OutcomeStatus.APPLIED} == {}
        assert recorded(self.database_url, self.prefix) == len(payments)
        assert balances(self.make_uow, accounts) == expected_balances(accounts, payments)
        assert verify_ledger(self.make_uow()) == []


@pytest.fixture
def bench(
    make_uow: UowFactory,
    database_url: str,
    env: dict[str, str],
    broker: redis.Redis,
    start_worker: StartWorker,
    start_submit: StartSubmit,
    prefix: str,
    tmp_path: Path,
) -> FileBench:
    return FileBench(make_uow, database_url, env, broker, start_worker, start_submit, prefix, tmp_path)


class TestInvalidRows:
    def test_every_kind_of_bad_csv_row_is_reported_at_its_line_and_not_sent_and_the_good_rows_are_applied(
        self, bench: FileBench
    ) -> None:
        a, b, c = bench.open_accounts(2, "500.00") + bench.open_accounts(1, "0.00")
        good = [
            deposit(c, "25.00", reference=f"{bench.prefix}good-deposit", description="a deposit"),
            transfer(a, c, "100.10", reference=f"{bench.prefix}good-transfer"),
            withdrawal(b, "40.00", reference=f"{bench.prefix}good-withdrawal"),
            deposit(a, "0.01", reference=f"{bench.prefix}good-cent"),
            transfer(b, a, "12", reference=f"{bench.prefix}good-whole"),
        ]

        def row(
            name: str, kind: str = "deposit", source: str = "", destination: str = c.number, **cells: str
        ) -> list[str]:
            """A deposit of 10.00 GBP into c, but for what the test changes."""
            amount, currency = cells.get("amount", "10.00"), cells.get("currency", "GBP")
            return [f"{bench.prefix}{name}", kind, source, destination, amount, currency, ""]

        # Each bad row breaks one rule, and the field that names it.
        bad: list[tuple[Line, str]] = [
            (row("unknown-type", kind="refund"), "type"),
            (row("transfer-without-destination", kind="transfer", source=a.number, destination=""), "destination"),
            (row("withdrawal-without-source", kind="withdrawal", destination=""), "source"),
            (row("deposit-with-a-source", source=a.number), "source"),
            (row("bad-account", destination="12ab"), "destination"),
            (row("short-account", destination="1234"), "destination"),
            (row("mistyped-account", kind="transfer", source=mistype(a.number)), "source"),
            (row("malformed-amount", amount="1o.00"), "amount"),
            (row("comma-amount", amount="1,000.00"), "amount"),
            (row("negative-amount", amount="-5.00"), "amount"),
            (row("zero-amount", amount="0.00"), "amount"),
            (row("over-precise-amount", amount="1.005"), "amount"),
            (row("missing-amount", amount=""), "amount"),
            (row("lowercase-currency", currency="gbp"), "currency"),
            (row("long-currency", currency="GBPX"), "currency"),
            (["bad reference!", "deposit", "", c.number, "10.00", "GBP", ""], "reference"),
            ([f"{bench.prefix}{'x' * 64}", "deposit", "", c.number, "10.00", "GBP", ""], "reference"),
            (f"{bench.prefix}undecodable,deposit,,{c.number},10.00,GBP,caf\xe9\n".encode("latin-1"), "description"),
            ([f"{bench.prefix}too-few-columns", "deposit", "", c.number, "10.00", "GBP"], "row"),
            ([f"{bench.prefix}too-many-columns", "deposit", "", c.number, "10.00", "GBP", "", "extra"], "row"),
        ]
        lines: list[tuple[Line, str | None]] = [*((payment, None) for payment in good), *bad]
        random.Random(5).shuffle(lines)
        path = write_csv(bench.tmp_path / "payments.csv", [line for line, _ in lines])
        expected_errors = sorted((number, field) for number, (_, field) in enumerate(lines, 2) if field is not None)
        worker = bench.start_worker()

        result = submit(["file", str(path), *WAIT, "--outcomes", str(bench.tmp_path / "out.csv")], bench.env)

        assert result.code == 1, result.stderr
        summary = result.summary()
        counts = {key: summary[key] for key in ("rows", "valid", "invalid", "enqueued", "applied", "pending")}
        assert counts == {"rows": 25, "valid": 5, "invalid": 20, "enqueued": 5, "applied": 5, "pending": 0}
        assert sorted((e["line"], e["field"]) for e in summary["errors"]) == expected_errors
        bench.wait_for_idle_broker()
        readable = [line[0] for line, _ in bad if isinstance(line, list) and len(line[0]) <= 64]
        outcomes = get_outcomes(bench.make_uow(), [*readable, f"{bench.prefix}undecodable"])
        assert {r: o.status for r, o in outcomes.items() if o.status is not OutcomeStatus.PENDING} == {}
        bench.assert_applied_once([a, b, c], good)
        outcome_lines = read_outcomes(bench.tmp_path / "out.csv")
        assert [int(o["line"]) for o in outcome_lines] == list(range(2, 27))
        for (line, field), outcome in zip(lines, outcome_lines, strict=True):
            if field is None:
                assert isinstance(line, PaymentRequest)
                assert (outcome["reference"], outcome["result"], outcome["error"]) == (line.reference, "applied", "")
            else:
                assert outcome["result"] == "invalid", outcome
                assert outcome["error"].startswith(f"{field}: "), outcome
        assert "Traceback" not in worker.output()

    def test_every_kind_of_bad_json_lines_row_is_reported_at_its_line_and_the_good_rows_are_applied(
        self, bench: FileBench
    ) -> None:
        a, b = bench.open_accounts(2, "100.00")
        good = [
            deposit(a, "5.00", reference=f"{bench.prefix}deposit"),
            transfer(a, b, "7.50", reference=f"{bench.prefix}transfer"),
        ]
        ok = file_row(good[0])
        path = write_jsonl(
            bench.tmp_path / "payments.jsonl",
            [
                good[0],  # line 1
                {**ok, "reference": f"{bench.prefix}float", "amount": 5.5},  # 2: a binary float is not money
                {**ok, "reference": f"{bench.prefix}number-account", "destination": 100000011},  # 3
                {**ok, "reference": f"{bench.prefix}unknown-key", "amonut": "5.00"},  # 4
                b'["not", "an", "object"]\n',  # 5
                b'{"reference": "broken\n',  # 6
                f'{{"reference": "{bench.prefix}latin-1", "description": "caf\xe9"}}\n'.encode("latin-1"),  # 7
                b"\n",  # 8: a blank line is not a row
                good[1],  # 9
                {**ok, "reference": f"{bench.prefix}currency", "currency": None},  # 10
            ],
        )
        bench.start_worker()

        result = submit(["file", str(path), *WAIT], bench.env)

        assert result.code == 1, result.stderr
        summary = result.summary()
        assert (summary["rows"], summary["valid"], summary["invalid"], summary["applied"]) == (9, 2, 7, 2)
        errors = [(e["line"], e["field"]) for e in summary["errors"]]
        expected = [(2, "amount"), (3, "destination"), (4, "row"), (5, "row"), (6, "row"), (7, "row"), (10, "currency")]
        assert errors == expected
        bench.wait_for_idle_broker()
        bench.assert_applied_once([a, b], good)


class TestResubmission:
    def test_a_fully_applied_file_submitted_again_changes_nothing_and_sends_nothing(self, bench: FileBench) -> None:
        accounts = bench.open_accounts(4, "1000.00")
        payments = random_payments(accounts, 60, bench.prefix)
        path = write_csv(bench.tmp_path / "payments.csv", payments)
        bench.start_worker()
        first = submit(["file", str(path), *WAIT], bench.env)
        assert first.code == 0, first.stderr
        assert (first.summary()["enqueued"], first.summary()["applied"]) == (60, 60)
        bench.wait_for_idle_broker()
        before = balances(bench.make_uow, accounts)

        again = submit(["file", str(path), *WAIT, "--outcomes", str(bench.tmp_path / "out.csv")], bench.env)

        assert again.code == 0, again.stderr
        summary = again.summary()
        counts = {key: summary[key] for key in ("valid", "enqueued", "already_recorded", "applied", "conflicts")}
        assert counts == {"valid": 60, "enqueued": 0, "already_recorded": 60, "applied": 60, "conflicts": 0}
        assert bench.broker.llen(QUEUE) == 0
        assert balances(bench.make_uow, accounts) == before
        bench.assert_applied_once(accounts, payments)
        assert {o["result"] for o in read_outcomes(bench.tmp_path / "out.csv")} == {"applied"}


class TestRepeatedReferences:
    def test_exact_duplicates_are_sent_once_and_a_reference_reused_for_another_payment_is_an_error_row(
        self, bench: FileBench
    ) -> None:
        a, b = bench.open_accounts(2, "100.00")
        once = deposit(a, "10.00", reference=f"{bench.prefix}once")
        twice = transfer(a, b, "20.00", reference=f"{bench.prefix}twice")
        first, other = (
            withdrawal(b, "5.00", reference=f"{bench.prefix}reused"),
            withdrawal(b, "6.00", reference=f"{bench.prefix}reused"),
        )
        # Lines 2 to 9. A new description alone is not another payment: that row is a duplicate too.
        lines = [
            once,
            twice,
            once,
            first,
            twice,
            other,
            deposit(a, "10.00", reference=once.reference, description="again"),
            twice,
        ]
        path = write_csv(bench.tmp_path / "payments.csv", lines)
        bench.start_worker()

        result = submit(["file", str(path), *WAIT, "--outcomes", str(bench.tmp_path / "out.csv")], bench.env)

        assert result.code == 1, result.stderr
        summary = result.summary()
        counts = {key: summary[key] for key in ("rows", "valid", "duplicates", "invalid", "enqueued", "applied")}
        assert counts == {"rows": 8, "valid": 3, "duplicates": 4, "invalid": 1, "enqueued": 3, "applied": 3}
        assert [(e["line"], e["field"]) for e in summary["errors"]] == [(7, "reference")]
        assert "line 5" in summary["errors"][0]["message"]
        bench.wait_for_idle_broker()
        bench.assert_applied_once([a, b], [once, twice, first])
        assert (
            get_outcome(bench.make_uow(), first.reference).conflicts == ()
        )  # the other payment never reached a worker
        outcomes = [(o["result"], o["duplicate_of_line"]) for o in read_outcomes(bench.tmp_path / "out.csv")]
        assert outcomes == [
            ("applied", ""),
            ("applied", ""),
            ("applied", "2"),
            ("applied", ""),
            ("applied", "3"),
            ("invalid", ""),
            ("applied", "2"),
            ("applied", "3"),
        ]

    def test_a_reference_recorded_by_an_earlier_file_for_another_payment_is_counted_as_a_conflict(
        self, bench: FileBench
    ) -> None:
        (a,) = bench.open_accounts(1, "0.00")
        earlier = deposit(a, "10.00", reference=f"{bench.prefix}shared")
        later, new = (
            deposit(a, "99.00", reference=f"{bench.prefix}shared"),
            deposit(a, "1.00", reference=f"{bench.prefix}new"),
        )
        bench.start_worker()
        first = submit(["file", str(write_csv(bench.tmp_path / "earlier.csv", [earlier])), *WAIT], bench.env)
        assert first.code == 0, first.stderr

        result = submit(
            [
                "file",
                str(write_csv(bench.tmp_path / "later.csv", [later, new])),
                *WAIT,
                "--outcomes",
                str(bench.tmp_path / "o"),
            ],
            bench.env,
        )

        # The row is not applied and never will be under its reference: that needs an operator, so exit 1.
        assert result.code == 1, result.stderr
        summary = result.summary()
        counts = {key: summary[key] for key in ("valid", "already_recorded", "enqueued", "conflicts", "pending")}
        assert counts == {"valid": 2, "already_recorded": 1, "enqueued": 1, "conflicts": 1, "pending": 0}
        outcomes = read_outcomes(bench.tmp_path / "o")
        assert [(o["reference"], o["result"]) for o in outcomes] == [
            (later.reference, "conflict"),
            (new.reference, "applied"),
        ]
        bench.wait_for_idle_broker()
        bench.assert_applied_once([a], [earlier, new])


class TestBrokerLoss:
    # Rows travel in payments.batch messages by default (here one message for the 30), or each alone.
    @pytest.mark.parametrize(("batch_size", "messages"), [("1000", 1), ("7", 5), ("1", 30)])
    def test_messages_lost_with_the_broker_are_sent_again_and_applied_once_each(
        self, bench: FileBench, batch_size: str, messages: int
    ) -> None:
        accounts = bench.open_accounts(4, "1000.00")
        payments = random_payments(accounts, 30, bench.prefix)
        path = write_csv(bench.tmp_path / "payments.csv", payments)
        command = bench.start_submit(
            "file", str(path), "--wait", "--resend-after", "2", "--timeout", "120", "--json", "--batch-size", batch_size
        )
        wait_until(lambda: bench.broker.llen(QUEUE) >= messages, 30, "every row on the queue")
        assert recorded(bench.database_url, bench.prefix) == 0  # no worker yet

        flush_broker(bench.broker)
        assert bench.broker.llen(QUEUE) == 0
        worker = bench.start_worker()
        result = command.finish(60)

        assert result.code == 0, f"{result.stderr}\n{worker.output()[-5000:]}"
        summary = result.summary()
        assert (summary["enqueued"], summary["applied"], summary["pending"]) == (30, 30, 0)
        assert summary["resent"] > 0
        bench.assert_applied_once(accounts, payments)


class TestResumption:
    def test_a_run_killed_part_way_is_finished_by_running_the_same_file_again(self, bench: FileBench) -> None:
        accounts = bench.open_accounts(10, "100000.00")
        payments = random_payments(accounts, 3000, bench.prefix)
        path = write_csv(bench.tmp_path / "payments.csv", payments)
        bench.start_worker()
        interrupted = bench.start_submit("file", str(path), "--wait", "--json")
        wait_until(lambda: recorded(bench.database_url, bench.prefix) >= 100, 30, "100 rows with an outcome")

        interrupted.process.send_signal(signal.SIGKILL)
        killed_at = recorded(bench.database_url, bench.prefix)
        assert interrupted.process.wait(10) == -signal.SIGKILL
        assert killed_at < len(payments), "the run ended before it could be interrupted"
        result = submit(["file", str(path), "--wait", "--timeout", "50", "--json"], bench.env)

        assert result.code == 0, result.stderr
        summary = result.summary()
        assert summary["already_recorded"] > 0
        assert summary["already_recorded"] + summary["enqueued"] == summary["valid"] == len(payments)
        assert (summary["applied"], summary["pending"]) == (len(payments), 0)
        bench.wait_for_idle_broker()
        bench.assert_applied_once(accounts, payments)


class TestExitCodes:
    def test_a_rejected_payment_is_an_outcome_and_exits_0(self, bench: FileBench) -> None:
        a, b = bench.open_accounts(2, "10.00")
        payments = [
            transfer(a, b, "10.01", reference=f"{bench.prefix}too-much"),
            transfer(a, b, "10.00", reference=f"{bench.prefix}enough"),
        ]
        bench.start_worker()

        result = submit(["file", str(write_csv(bench.tmp_path / "payments.csv", payments)), *WAIT], bench.env)

        assert result.code == 0, result.stderr
        summary = result.summary()
        assert (summary["applied"], summary["rejected"], summary["rejected_by_reason"]) == (
            1,
            1,
            {"insufficient_funds": 1},
        )
        assert balances(bench.make_uow, [a, b]) == {a.number: Decimal("0.00"), b.number: Decimal("20.00")}

    def test_dry_run_of_a_valid_file_exits_0_and_sends_nothing(self, bench: FileBench) -> None:
        accounts = bench.open_accounts(3, "100.00")
        path = write_csv(bench.tmp_path / "payments.csv", random_payments(accounts, 50, bench.prefix))

        result = submit(["file", str(path), "--dry-run", "--json"], bench.env)

        assert result.code == 0, result.stderr
        summary = result.summary()
        assert (summary["rows"], summary["valid"], summary["invalid"], summary["enqueued"]) == (50, 50, 0, 0)
        assert bench.broker.llen(QUEUE) == 0
        assert recorded(bench.database_url, bench.prefix) == 0

    def test_waiting_with_no_worker_ends_at_the_timeout_with_exit_1_and_the_rows_pending(
        self, bench: FileBench
    ) -> None:
        accounts = bench.open_accounts(2, "100.00")
        path = write_csv(bench.tmp_path / "payments.csv", random_payments(accounts, 5, bench.prefix))

        result = submit(["file", str(path), "--wait", "--timeout", "1", "--json"], bench.env)

        assert result.code == 1, result.stderr
        summary = result.summary()
        assert (summary["enqueued"], summary["pending"], summary["invalid"]) == (5, 5, 0)
        assert bench.broker.llen(QUEUE) == 1  # one payments.batch message carries the 5

    @pytest.mark.parametrize(
        ("name", "content", "said"),
        [
            pytest.param("missing.csv", None, "missing.csv", id="missing file"),
            pytest.param("payments.txt", VALID_CSV, "--format", id="unknown extension"),
            pytest.param("payments.csv", BAD_HEADER, "header", id="bad header"),
            pytest.param("payments.csv", b"", "empty", id="empty file"),
        ],
    )
    def test_a_file_that_cannot_be_read_exits_2_with_one_error_line_and_sends_nothing(
        self, env: dict[str, str], broker: redis.Redis, tmp_path: Path, name: str, content: bytes | None, said: str
    ) -> None:
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)

        result = submit(["file", str(path), "--wait", "--timeout", "5"], env)

        assert result.code == 2, result.stderr
        assert result.stdout == ""
        assert said in error_line(result.stderr)
        assert broker.llen(QUEUE) == 0

    def test_resend_after_without_wait_is_a_usage_error_exit_2(
        self, env: dict[str, str], broker: redis.Redis, tmp_path: Path
    ) -> None:
        path = tmp_path / "payments.csv"
        path.write_bytes(VALID_CSV)

        result = submit(["file", str(path), "--resend-after", "5"], env)

        assert result.code == 2, result.stderr
        assert "--resend-after" in result.stderr
        assert "Traceback" not in result.stderr
        assert broker.llen(QUEUE) == 0

    def test_outcomes_path_that_cannot_be_written_exits_2_before_anything_is_sent(
        self, env: dict[str, str], broker: redis.Redis, tmp_path: Path
    ) -> None:
        path = tmp_path / "payments.csv"
        path.write_bytes(VALID_CSV)

        result = submit(["file", str(path), "--outcomes", str(tmp_path / "missing" / "out.csv")], env)

        assert result.code == 2, result.stderr
        assert "cannot write --outcomes" in error_line(result.stderr)
        assert broker.llen(QUEUE) == 0
