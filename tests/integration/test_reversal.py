"""Reversal: opposite entries through the payments' apply path, one per original, linked both ways, audited."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from click.testing import Result

from processor.cli import cli
from processor.domain.book import Policy
from processor.domain.errors import InvalidValue, NotReversible, TransactionNotFound
from processor.domain.outcomes import Delivery, Outcome, OutcomeStatus, Reason
from processor.services.reading import list_audit, show_transaction
from processor.services.reversal import reverse_transaction
from processor.services.verify import verify_ledger
from tests.builders import UowFactory, balance, make_account, pay, tamper
from tests.clis import error_line, invoke, invoke_json
from tests.integration.test_concurrency import race
from tests.requests import deposit, transfer, unique, withdrawal


def reverse(
    make_uow: UowFactory, reference: str, new_reference: str | None = None, reason: str = "sent twice"
) -> Outcome:
    return reverse_transaction(make_uow(), reference, reason, "alice", Policy(), new_reference)


def run(*args: str) -> Result:
    return invoke(cli, *args)


def run_json(*args: str) -> Any:
    return invoke_json(cli, *args)


class TestReversal:
    def test_a_transfer_is_undone_by_the_opposite_transfer_linked_both_ways(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="100.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "40.00", reference="wrong-1"))

        outcome = reverse(make_uow, "wrong-1", "rev-wrong-1")

        assert (outcome.status, outcome.type, outcome.source, outcome.destination, outcome.amount) == (
            OutcomeStatus.APPLIED,
            "transfer",
            b.number,
            a.number,
            "40.00",
        )
        assert (balance(make_uow, a.number), balance(make_uow, b.number)) == (Decimal("100.00"), Decimal("0.00"))
        original, reversal = show_transaction(make_uow(), "wrong-1"), show_transaction(make_uow(), "rev-wrong-1")
        assert original.reversed_by == "rev-wrong-1"
        assert reversal.transaction is not None
        assert reversal.transaction.reverses == "wrong-1"
        assert [(e.account, e.amount) for e in reversal.entries] == [
            (b.number, Decimal("-40.00")),
            (a.number, Decimal("40.00")),
        ]
        assert verify_ledger(make_uow()) == []

    @pytest.mark.parametrize(
        ("kind", "expected_type"), [("deposit", "withdrawal"), ("withdrawal", "deposit")], ids=["deposit", "withdrawal"]
    )
    def test_a_deposit_or_withdrawal_is_undone_against_the_settlement_side(
        self, make_uow: UowFactory, kind: str, expected_type: str
    ) -> None:
        account = make_account(make_uow, type="reward", balance="50.00")
        request = deposit(account, "20.00") if kind == "deposit" else withdrawal(account, "20.00")
        pay(make_uow, request)

        outcome = reverse(make_uow, request.reference)

        assert (outcome.status, outcome.type) == (OutcomeStatus.APPLIED, expected_type)
        assert balance(make_uow, account.number) == Decimal("50.00")
        assert verify_ledger(make_uow()) == []

    def test_a_reversal_earns_no_reward_points(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow, type="reward", balance="100.00")
        pay(make_uow, withdrawal(account, "50.00", reference="wd-points"))
        before = show_points(make_uow, account.number)

        reverse(make_uow, "wd-points")

        assert show_points(make_uow, account.number) == before

    def test_the_reversal_is_audited_with_actor_and_reason(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="audited-1"))

        reverse(make_uow, "audited-1", "rev-audited-1", reason="duplicate of invoice 7")

        [entry] = list_audit(make_uow(), transaction="audited-1").items
        assert (entry.actor, entry.action, entry.entity_type, entry.entity) == (
            "alice",
            "transaction.reversed",
            "transaction",
            "audited-1",
        )
        assert entry.details["reason"] == "duplicate of invoice 7"
        assert entry.details["reversal"] == "rev-audited-1"

    def test_the_same_reversal_again_is_a_duplicate_with_no_second_effect(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="twice-1"))
        reverse(make_uow, "twice-1", "rev-twice-1")

        again = reverse(make_uow, "twice-1", "rev-twice-1")

        assert (again.status, again.delivery) == (OutcomeStatus.APPLIED, Delivery.DUPLICATE)
        assert balance(make_uow, a.number) == Decimal("10.00")
        assert len(list_audit(make_uow(), transaction="twice-1").items) == 1

    def test_a_second_reversal_under_another_reference_is_refused(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="second-1"))
        reverse(make_uow, "second-1", "rev-second-1")

        with pytest.raises(NotReversible, match="reversed already, by rev-second-1"):
            reverse(make_uow, "second-1", "rev-second-2")

        assert show_transaction(make_uow(), "second-1").rejected_reversals == ()
        assert balance(make_uow, a.number) == Decimal("10.00")

    def test_a_reversal_that_would_break_the_floor_is_rejected_recorded_and_audited(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="30.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "30.00", reference="spent-1"))
        pay(make_uow, withdrawal(b, "25.00"))  # b has spent the money: 5.00 left

        outcome = reverse(make_uow, "spent-1", "rev-spent-1")

        assert (outcome.status, outcome.reason) == (OutcomeStatus.REJECTED, Reason.INSUFFICIENT_FUNDS)
        assert balance(make_uow, b.number) == Decimal("5.00")
        original = show_transaction(make_uow(), "spent-1")
        assert (original.reversed_by, original.rejected_reversals) == (None, ("rev-spent-1",))
        [entry] = list_audit(make_uow(), transaction="spent-1").items
        assert (entry.action, entry.details["rejection"]) == ("transaction.reversal_rejected", "insufficient_funds")
        # Rejected is not reversed: once the money is back, a reversal under a new reference applies.
        pay(make_uow, deposit(b, "25.00"))
        assert reverse(make_uow, "spent-1", "rev-spent-2").status is OutcomeStatus.APPLIED

    def test_a_reversal_out_of_a_frozen_account_is_rejected_by_its_status(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="30.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "30.00", reference="frozen-1"))
        invoke_json(cli, "account", "set-status", b.number, "frozen", "--reason", "fraud case 1")

        outcome = reverse(make_uow, "frozen-1")

        assert (outcome.status, outcome.reason) == (OutcomeStatus.REJECTED, Reason.OUTGOING_BLOCKED)
        assert balance(make_uow, b.number) == Decimal("30.00")

    def test_a_rejected_payment_has_nothing_to_reverse(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow)
        pay(make_uow, withdrawal(a, "5.00", reference="nothing-1"))

        with pytest.raises(NotReversible, match="nothing to reverse"):
            reverse(make_uow, "nothing-1")

    def test_a_reversal_is_not_reversed_in_turn(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="5.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "5.00", reference="back-1"))
        reverse(make_uow, "back-1", "rev-back-1")

        with pytest.raises(NotReversible, match="is the reversal of back-1"):
            reverse(make_uow, "rev-back-1")

    def test_an_unknown_reference_is_not_found(self, make_uow: UowFactory) -> None:
        with pytest.raises(TransactionNotFound):
            reverse(make_uow, "no-such-ref")

    def test_the_reference_of_another_payment_is_refused_and_records_nothing(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="5.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "5.00", reference="taken-1"), deposit(a, "1.00", reference="taken-2"))

        with pytest.raises(InvalidValue, match="taken-2 is already the reference"):
            reverse(make_uow, "taken-1", "taken-2")

        assert show_transaction(make_uow(), "taken-2").conflicts == ()


class TestReversalRaces:
    def test_a_reversal_racing_a_withdrawal_of_the_same_money_never_overdraws(self, make_uow: UowFactory) -> None:
        for round in range(4):
            a = make_account(make_uow)
            b = make_account(make_uow)
            reference = unique("race")
            pay(make_uow, deposit(a, "50.00"), transfer(a, b, "50.00", reference=reference))

            def job(i: int, reference: str = reference, b: Any = b) -> Outcome:
                if i == 0:
                    return reverse(make_uow, reference)
                return pay(make_uow, withdrawal(b, "30.00"))[0]

            reversal, spent = race(2, job)

            # b holds 50.00: the reversal (50) and the withdrawal (30) cannot both apply, and one of them must.
            assert {reversal.status, spent.status} == {OutcomeStatus.APPLIED, OutcomeStatus.REJECTED}, round
            expected = {OutcomeStatus.APPLIED: Decimal("0.00"), OutcomeStatus.REJECTED: Decimal("20.00")}
            assert balance(make_uow, b.number) == expected[reversal.status]
        assert verify_ledger(make_uow()) == []

    def test_two_reversals_of_one_transaction_at_once_apply_once(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="both-1"))

        def job(i: int) -> Outcome | NotReversible:
            try:
                return reverse(make_uow, "both-1", f"rev-both-{i}")
            except NotReversible as refused:
                return refused

        results = race(4, job)

        applied = [r for r in results if isinstance(r, Outcome) and r.status is OutcomeStatus.APPLIED]
        assert len(applied) == 1
        assert sum(isinstance(r, NotReversible) for r in results) == 3
        assert balance(make_uow, a.number) == Decimal("10.00")


def forge_reversal(make_uow: UowFactory, original: str, amount: str) -> None:
    """An applied transaction that claims to reverse `original` but posts nothing: what verify must catch, and
    what the ledger's guards (migration 0004) refuse unless they are switched off."""
    tamper(
        make_uow,
        "INSERT INTO transactions (reference, type, amount, currency, payload, fingerprint, status, reverses_id)"
        " SELECT 'forged-' || reference, 'transfer', :amount, 'GBP', '{}', 'x', 'applied', id"
        " FROM transactions WHERE reference = :original",
        original=original,
        amount=amount,
    )


class TestVerifyLinks:
    def test_a_reversal_that_does_not_mirror_its_original_is_a_violation(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="20.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="mirror-1"))
        assert verify_ledger(make_uow()) == []

        forge_reversal(make_uow, "mirror-1", "10.00")

        checks = {v.check for v in verify_ledger(make_uow())}
        assert "reversal_mirrors_original" in checks
        assert "reversal_reverses_an_applied_payment" not in checks

    def test_a_reversal_of_a_rejected_payment_is_a_violation(self, make_uow: UowFactory) -> None:
        b = make_account(make_uow)
        pay(make_uow, withdrawal(b, "10.00", reference="rejected-1"))

        forge_reversal(make_uow, "rejected-1", "10.00")

        assert "reversal_reverses_an_applied_payment" in {v.check for v in verify_ledger(make_uow())}

    def test_a_reversal_of_another_amount_is_a_violation(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="20.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="amount-1"))

        forge_reversal(make_uow, "amount-1", "9.99")

        assert "reversal_reverses_an_applied_payment" in {v.check for v in verify_ledger(make_uow())}


class TestReverseCommand:
    def test_reverses_and_prints_the_outcome_with_the_link(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="cli-1"))

        data = run_json("transaction", "reverse", "cli-1", "--reason", "wrong payee", "--reference", "rev-cli-1")

        assert (data["reference"], data["status"], data["reverses"], data["delivery"]) == (
            "rev-cli-1",
            "applied",
            "cli-1",
            "first",
        )
        shown = run_json("transaction", "show", "cli-1")
        assert shown["reversed_by"] == "rev-cli-1"
        assert run_json("transaction", "show", "rev-cli-1")["reverses"] == "cli-1"

    def test_a_second_reversal_is_exit_1_with_one_line(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="cli-2"))
        run_json("transaction", "reverse", "cli-2", "--reason", "wrong payee", "--reference", "rev-cli-2")

        result = run("transaction", "reverse", "cli-2", "--reason", "again")

        assert result.exit_code == 1
        assert error_line(result.stderr) == "error: transaction cli-2 was reversed already, by rev-cli-2"

    def test_a_rejected_reversal_is_exit_1_and_its_outcome_is_printed(self, make_uow: UowFactory) -> None:
        a = make_account(make_uow, balance="10.00")
        b = make_account(make_uow)
        pay(make_uow, transfer(a, b, "10.00", reference="cli-3"), withdrawal(b, "10.00"))

        result = run("transaction", "reverse", "cli-3", "--reason", "too late", "--reference", "rev-cli-3", "--json")

        assert result.exit_code == 1
        assert "rejected (insufficient_funds) and recorded" in error_line(result.stderr)
        assert '"status": "rejected"' in result.stdout

    def test_an_empty_reason_is_refused(self, make_uow: UowFactory) -> None:
        result = run("transaction", "reverse", "cli-4", "--reason", "  ")

        assert result.exit_code == 1
        assert "reason" in error_line(result.stderr)


def show_points(make_uow: UowFactory, number: str) -> int:
    return int(run_json("account", "show", number)["reward_points"])
