"""Messages held for operators: what arrived is kept, clipped to a readable size, and `processor held` lists it."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result

from processor.cli import cli
from processor.domain.errors import HeldActionRefused
from processor.domain.held import MAX_FIELDS, HeldMessage, HeldReason
from processor.domain.requests import CLIP_LENGTH
from processor.services.held import hold_message, list_held, resend_held, resolve_held
from processor.services.reading import list_audit
from tests.builders import UowFactory, make_account, pay
from tests.clis import error_line, invoke, invoke_json
from tests.requests import deposit, unique

NEW_TASK_ID = "a new task id"  # a message's task id is unique to it: the builder makes one per call by default
HELD_KEYS = {
    "id",
    "at",
    "reason",
    "task",
    "task_id",
    "reference",
    "message",
    "error",
    "outcome",
    "resent_at",
    "resends",
    "resolved_at",
    "resolved_by",
    "resolution",
}


def held_message(
    reason: HeldReason = HeldReason.UNREADABLE,
    task: str = "payments.deposit",
    task_id: str | None = NEW_TASK_ID,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    error: str = "reference: 'ref 1' is not 1 to 64 characters of A-Z a-z 0-9 . _ : -",
) -> HeldMessage:
    """A message as a worker holds it, by default one whose reference cannot be read."""
    if kwargs is None:
        kwargs = {"reference": "ref 1", "account": "200000018", "amount": "10.00", "currency": "GBP"}
    task_id = unique("task") if task_id == NEW_TASK_ID else task_id
    return HeldMessage.of(reason, task, task_id, args, kwargs, error)


def hold(make_uow: UowFactory, **overrides: Any) -> int:
    return hold_message(make_uow(), held_message(**overrides))


def run(*args: str) -> Result:
    return invoke(cli, *args)


class TestHeldMessageOf:
    def test_small_message_is_kept_as_it_arrived(self) -> None:
        held = held_message(kwargs={"reference": "ref-1", "amount": 1.5})

        assert held.message == {"reference": "ref-1", "amount": 1.5}
        assert held.reference == "ref-1"

    def test_thousands_of_junk_keys_are_cut_to_the_first_fields_and_a_note(self) -> None:
        junk = {f"junk{i}": i for i in range(10_000)}

        held = held_message(kwargs=junk)

        assert len(held.message) == MAX_FIELDS + 1
        assert list(held.message)[:MAX_FIELDS] == [f"junk{i}" for i in range(MAX_FIELDS)]
        assert held.message["…"] == f"{10_000 - MAX_FIELDS} more fields"

    def test_huge_value_is_kept_as_an_excerpt(self) -> None:
        held = held_message(kwargs={"description": "d" * 1_000_000})

        excerpt = held.message["description"]

        assert isinstance(excerpt, str)
        assert excerpt == f"{'d' * CLIP_LENGTH}… (1000000 characters)"

    def test_long_key_is_cut_short(self) -> None:
        held = held_message(kwargs={"k" * 10_000: 1})

        assert list(held.message) == ["k" * 64]

    def test_value_that_is_not_json_is_kept_as_text(self) -> None:
        held = held_message(kwargs={"amount": {"value": [1, 2]}})

        assert held.message == {"amount": "{'value': [1, 2]}"}

    def test_positional_arguments_are_kept_as_text(self) -> None:
        held = held_message(args=("ref-1", 10), kwargs={})

        assert held.message == {"args": "['ref-1', 10]"}

    def test_unreadable_reference_that_fits_is_kept_as_it_arrived(self) -> None:
        # An operator can search for what the sender wrote, even though no outcome could be recorded against it.
        held = held_message(kwargs={"reference": "ref 1"})

        assert held.reference == "ref 1"

    @pytest.mark.parametrize("reference", ["r" * 65, 42, None])
    def test_reference_that_cannot_be_stored_is_left_out(self, reference: object) -> None:
        held = held_message(kwargs={"reference": reference})

        assert held.reference is None

    def test_huge_error_and_task_name_are_cut_short(self) -> None:
        held = held_message(task="t" * 10_000, error="e" * 1_000_000)

        assert held.task == "t" * 200
        assert held.error == f"{'e' * CLIP_LENGTH}… (1000000 characters)"


class TestHoldMessage:
    def test_a_redelivered_message_is_held_once(self, make_uow: UowFactory) -> None:
        # A worker killed after holding a message, before acking it, gets the same message (same task id) again.
        first = hold(make_uow, task_id="task-7")
        again = hold(make_uow, task_id="task-7")

        assert again == first
        assert [m.id for m in list_held(make_uow())] == [first]

    def test_another_message_under_a_reused_task_id_is_held_too(self, make_uow: UowFactory) -> None:
        # Task ids are the sender's to choose: one that reuses them must not lose the later message's hold.
        first = hold(make_uow, task_id="task-8", kwargs={"reference": "ref 1", "amount": "10.00"})
        other = hold(make_uow, task_id="task-8", kwargs={"reference": "ref 2", "amount": "10.00"})
        again = hold(make_uow, task_id="task-8", kwargs={"amount": "10.00", "reference": "ref 2"})

        assert other != first
        assert again == other
        assert [(m.id, m.message["reference"]) for m in list_held(make_uow())] == [(first, "ref 1"), (other, "ref 2")]

    def test_the_same_message_under_another_task_is_held_apart(self, make_uow: UowFactory) -> None:
        first = hold(make_uow, task_id="task-9", task="payments.deposit")
        other = hold(make_uow, task_id="task-9", task="payments.withdraw")

        assert other != first

    def test_held_message_is_listed_with_what_was_recorded(self, make_uow: UowFactory) -> None:
        held = held_message(
            reason=HeldReason.RETRIES_SPENT,
            task="payments.transfer",
            task_id="task-42",
            kwargs={"reference": "ref-42", "amount": "10.00", "description": "d" * 10_000},
            error="OperationalError('server closed the connection')",
        )
        before = datetime.now(UTC)

        held_id = hold_message(make_uow(), held)

        [listed] = list_held(make_uow())
        assert listed.id == held_id
        assert listed.at is not None
        assert before - timedelta(seconds=5) <= listed.at <= datetime.now(UTC) + timedelta(seconds=5)
        assert (listed.reason, listed.task, listed.task_id, listed.reference, listed.error) == (
            HeldReason.RETRIES_SPENT,
            "payments.transfer",
            "task-42",
            "ref-42",
            "OperationalError('server closed the connection')",
        )
        assert listed.message == {"reference": "ref-42", "amount": "10.00", "description": held.message["description"]}
        assert str(listed.message["description"]).endswith("… (10000 characters)")

    @pytest.mark.parametrize("reason", list(HeldReason))
    def test_every_reason_can_be_recorded(self, make_uow: UowFactory, reason: HeldReason) -> None:
        hold(make_uow, reason=reason)

        assert [m.reason for m in list_held(make_uow())] == [reason]

    def test_message_with_thousands_of_junk_keys_is_stored_clipped(self, make_uow: UowFactory) -> None:
        hold(make_uow, kwargs={f"junk{i}": "x" * 1000 for i in range(10_000)})

        [listed] = list_held(make_uow())

        assert len(listed.message) == MAX_FIELDS + 1
        assert listed.message["…"] == f"{10_000 - MAX_FIELDS} more fields"

    def test_message_without_task_id_or_reference_is_recorded(self, make_uow: UowFactory) -> None:
        hold(make_uow, task_id=None, kwargs={})

        [listed] = list_held(make_uow())

        assert (listed.task_id, listed.reference, listed.message) == (None, None, {})

    @pytest.mark.parametrize(
        "odd",
        [
            pytest.param({"kwargs": {"reference": "ref\x00 1"}}, id="nul-in-reference"),
            pytest.param({"kwargs": {"description": "\x00"}}, id="nul-in-value"),
            pytest.param({"kwargs": {"\x00": 1}}, id="nul-in-key"),
            pytest.param({"task_id": "t" * 201}, id="long-task-id"),
        ],
    )
    def test_any_message_a_producer_can_send_can_be_held(self, make_uow: UowFactory, odd: dict[str, Any]) -> None:
        hold(make_uow, **odd)

        assert len(list_held(make_uow())) == 1

    def test_list_is_the_latest_up_to_the_limit_oldest_first(self, make_uow: UowFactory) -> None:
        ids = [hold(make_uow, task_id=f"task-{i}") for i in range(4)]

        listed = list_held(make_uow(), limit=2)

        assert [m.id for m in listed] == ids[2:]
        assert [m.task_id for m in listed] == ["task-2", "task-3"]

    def test_holding_logs_an_error_line(self, make_uow: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="processor")

        held_id = hold(make_uow, task_id="task-logged")

        [record] = [r for r in caplog.records if r.name == "processor"]
        assert record.levelno == logging.ERROR
        assert (record.__dict__["event"], record.__dict__["id"], record.__dict__["task_id"]) == (
            "payment.held",
            held_id,
            "task-logged",
        )


class TestHeldCommand:
    def test_nothing_held(self, make_uow: UowFactory) -> None:
        # `processor held` alone is `processor held list`, as it was before held had subcommands.
        result = run("held")

        assert result.exit_code == 0, result.stderr
        assert result.stdout.strip() == "no held messages"

    @pytest.mark.parametrize("limit", ["0", "99999999999999999999"])
    def test_a_limit_out_of_range_is_a_usage_error(self, make_uow: UowFactory, limit: str) -> None:
        result = run("held", "list", "--limit", limit)

        assert result.exit_code == 2
        assert "--limit" in result.stderr

    def test_nothing_held_as_json_is_an_empty_page(self, make_uow: UowFactory) -> None:
        result = run("held", "list", "--json")

        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == {"items": [], "next": None}

    def test_held_message_is_a_table_row(self, make_uow: UowFactory) -> None:
        held_id = hold(make_uow, reason=HeldReason.FAILED, kwargs={"reference": "ref-9"}, error="boom")

        result = run("held", "list")

        assert result.exit_code == 0, result.stderr
        [row] = [line for line in result.stdout.splitlines() if "ref-9" in line]
        held_id_cell, at, *cells = [cell.strip() for cell in row.strip().strip("│").split("│")]
        assert held_id_cell == str(held_id)
        assert datetime.fromisoformat(at).utcoffset() is not None  # RFC 3339 with its offset, as every table
        assert cells == ["failed", "payments.deposit", "ref-9", "pending", "boom", "reference=ref-9"]

    def test_escape_sequences_and_markup_in_a_message_are_shown_not_obeyed(self, make_uow: UowFactory) -> None:
        hold(make_uow, kwargs={"reference": "ref-10", "note": "\x1b[2J[bold red]pwned[/]"}, error="\x1b]0;title\x07")

        result = run("held")

        assert result.exit_code == 0, result.stderr
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout
        assert "[bold red]pwned[/]" in result.stdout
        assert "\\x1b[2J" in result.stdout

    def test_json_lists_each_held_message_with_its_fields(self, make_uow: UowFactory) -> None:
        held_id = hold(
            make_uow, task_id="task-1", kwargs={"reference": "ref 1", "amount": 1.5}, error="reference: not readable"
        )

        result = run("held", "list", "--json")

        assert result.exit_code == 0, result.stderr
        [data] = json.loads(result.stdout)["items"]
        assert set(data) == HELD_KEYS
        assert datetime.fromisoformat(data["at"]).tzinfo is not None
        assert {k: v for k, v in data.items() if k != "at"} == {
            "id": held_id,
            "reason": "unreadable",
            "task": "payments.deposit",
            "task_id": "task-1",
            "reference": "ref 1",
            "message": {"reference": "ref 1", "amount": 1.5},
            "error": "reference: not readable",
            "outcome": None,
            "resent_at": None,
            "resends": 0,
            "resolved_at": None,
            "resolved_by": None,
            "resolution": None,
        }

    def test_pages_run_newest_first(self, make_uow: UowFactory) -> None:
        ids = [hold(make_uow) for _ in range(3)]

        first = run("held", "list", "--limit", "2", "--json")
        assert first.exit_code == 0, first.stderr
        page = json.loads(first.stdout)
        second = json.loads(run("held", "list", "--limit", "2", "--after", page["next"], "--json").stdout)

        assert [m["id"] for m in page["items"]] == [ids[2], ids[1]]
        assert [m["id"] for m in second["items"]] == [ids[0]]
        assert second["next"] is None

    def test_limit_zero_is_a_usage_error(self, make_uow: UowFactory) -> None:
        result = run("held", "list", "--limit", "0")

        assert result.exit_code == 2
        assert "--limit" in result.stderr


def never_sent(message: object) -> None:
    raise AssertionError(f"nothing should be sent, but {message!r} was")


class TestResolveAndResend:
    def test_resolve_closes_it_with_a_note_and_an_audit_entry(self, make_uow: UowFactory) -> None:
        held_id = hold(make_uow)

        data = invoke_json(cli, "held", "resolve", str(held_id), "--reason", "sender fixed it", "--actor", "alice")

        assert (data["resolved_by"], data["resolution"]) == ("alice", "sender fixed it")
        assert invoke_json(cli, "held", "list")["items"] == []
        assert [m["id"] for m in invoke_json(cli, "held", "list", "--all")["items"]] == [held_id]
        [entry] = list_audit(make_uow()).items
        assert (entry.actor, entry.action, entry.entity, entry.details["reason"]) == (
            "alice",
            "held.resolved",
            str(held_id),
            "sender fixed it",
        )

    def test_a_second_resolution_is_refused(self, make_uow: UowFactory) -> None:
        held_id = hold(make_uow)
        resolve_held(make_uow(), held_id, "done", "alice")

        result = run("held", "resolve", str(held_id), "--reason", "again")

        assert result.exit_code == 1
        assert error_line(result.stderr) == f"error: held message {held_id} was resolved already, by alice: done"

    def test_a_resend_of_a_reference_with_an_outcome_sends_nothing_and_says_so(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)
        pay(make_uow, deposit(account, "10.00", reference="settled-1"))
        kwargs = {"reference": "settled-1", "account": account.number, "amount": "10.00", "currency": "GBP"}
        held_id = hold(make_uow, reason=HeldReason.RETRIES_SPENT, kwargs=kwargs)

        result = run("held", "resend", str(held_id), "--actor", "alice")

        assert result.exit_code == 0, result.stderr
        assert "nothing sent: settled-1 has an outcome already (applied)" in " ".join(result.stdout.split())
        [entry, *_] = list_audit(make_uow()).items
        assert (entry.actor, entry.action, entry.entity) == ("alice", "held.resend_skipped", str(held_id))

    def test_a_message_without_a_readable_reference_cannot_be_resent(self, make_uow: UowFactory) -> None:
        held_id = hold(make_uow)  # its reference is 'ref 1'

        with pytest.raises(HeldActionRefused, match="not a valid payment"):
            resend_held(make_uow(), held_id, "alice", never_sent)

    def test_a_resolved_message_is_not_resent(self, make_uow: UowFactory) -> None:
        held_id = hold(make_uow, kwargs={"reference": "ref-2", "account": "x"})
        resolve_held(make_uow(), held_id, "done", "alice")

        with pytest.raises(HeldActionRefused, match="was resolved by alice"):
            resend_held(make_uow(), held_id, "alice", never_sent)

    def test_an_unknown_id_is_exit_1(self, make_uow: UowFactory) -> None:
        result = run("held", "resend", "999999")

        assert result.exit_code == 1
        assert error_line(result.stderr) == "error: no held message has the id 999999"
