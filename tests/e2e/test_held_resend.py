"""`processor held resend`: a held payment goes back through the broker to a real worker, and applies once."""

from __future__ import annotations

from decimal import Decimal

from processor.cli import cli
from processor.domain.held import HeldMessage, HeldReason
from processor.services.held import hold_messages
from processor.services.reading import list_audit
from tests.builders import UowFactory, balance, make_account
from tests.clis import invoke, invoke_json
from tests.e2e.conftest import StartWorker, wait_for_outcomes


def test_held_payments_resent_apply_once_and_show_their_outcome(
    make_uow: UowFactory, broker_url: str, start_worker: StartWorker
) -> None:
    account = make_account(make_uow)
    # As a worker holds them when their retries are spent: one single message, one item of a batch.
    single = HeldMessage.of(
        HeldReason.RETRIES_SPENT,
        "payments.deposit",
        "task-resend-1",
        (),
        {"reference": "resend-1", "account": account.number, "amount": "12.50", "currency": "GBP"},
        "OperationalError('server closed the connection')",
    )
    item = HeldMessage.of(
        HeldReason.RETRIES_SPENT,
        "payments.batch",
        "task-resend-2#0",
        (),
        {
            "reference": "resend-2",
            "type": "deposit",
            "destination": account.number,
            "amount": "7.50",
            "currency": "GBP",
        },
        "OperationalError('server closed the connection')",
    )
    single_id, item_id = hold_messages(make_uow(), [single, item])
    worker = start_worker(concurrency=1)

    sent = [invoke_json(cli, "held", "resend", str(i), "--actor", "alice") for i in (single_id, item_id)]
    outcomes = wait_for_outcomes(make_uow, ["resend-1", "resend-2"], timeout=60, workers=[worker])

    assert [s["sent"] for s in sent] == [True, True]
    assert {r: o.status for r, o in outcomes.items()} == {"resend-1": "applied", "resend-2": "applied"}
    assert balance(make_uow, account.number) == Decimal("20.00")
    listed = {m["id"]: m for m in invoke_json(cli, "held", "list")["items"]}
    assert {(listed[i]["outcome"], listed[i]["resends"]) for i in (single_id, item_id)} == {("applied", 1)}
    assert [(e.actor, e.action) for e in list_audit(make_uow()).items if e.entity_type == "held_message"] == [
        ("alice", "held.resent"),
        ("alice", "held.resent"),
    ]

    again = invoke(cli, "held", "resend", str(single_id))

    assert again.exit_code == 0, again.stderr
    assert "nothing sent" in again.stdout
    assert balance(make_uow, account.number) == Decimal("20.00")
