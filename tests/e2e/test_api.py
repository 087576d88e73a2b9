"""The HTTP API end to end: requests through Flask's test client, applied by a real worker from the run's Redis."""

from __future__ import annotations

import time
from decimal import Decimal

from tests.builders import UowFactory, balance, make_account
from tests.e2e.conftest import StartWorker, wait_for_outcomes
from tests.requests import unique
from tests.web import Api


def test_a_payment_repeated_applies_once_and_another_body_under_its_key_is_409(
    api: Api, make_uow: UowFactory, start_worker: StartWorker
) -> None:
    worker = start_worker()
    a, b = make_account(make_uow, balance="100.00"), make_account(make_uow)
    key = unique("api-e2e")
    body = {"type": "transfer", "source": a.number, "destination": b.number, "amount": "30.00", "currency": "GBP"}
    statuses = {api.pay(key, body).status_code for _ in range(5)}
    assert statuses <= {200, 202}
    (outcome,) = wait_for_outcomes(make_uow, [key], workers=[worker]).values()
    assert outcome.status == "applied"
    again = api.pay(key, body)
    assert (again.status_code, again.get_json()["delivery"]) == (200, "duplicate")
    assert (balance(make_uow, a.number), balance(make_uow, b.number)) == (Decimal("70.00"), Decimal("30.00"))

    conflict = api.pay(key, {**body, "amount": "31.00"})
    assert conflict.status_code == 409
    assert conflict.get_json()["outcome"]["amount"] == "30.00"
    # The worker records the refused attempt beside the outcome, which stands.
    deadline = time.monotonic() + 30
    while not (shown := api.get(f"/payments/{key}").get_json())["conflicts"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [c["fields"] for c in shown["conflicts"]] == [["amount"]], worker.output()[-3000:]
    assert (balance(make_uow, a.number), balance(make_uow, b.number)) == (Decimal("70.00"), Decimal("30.00"))


def test_a_batch_of_1000_applies_every_payment(api: Api, make_uow: UowFactory, start_worker: StartWorker) -> None:
    worker = start_worker()
    account = make_account(make_uow)
    rows = [
        {"reference": unique("api-batch"), "type": "deposit", "destination": account.number}
        | {"amount": "1.25", "currency": "GBP"}
        for _ in range(1000)
    ]
    response = api.batch(rows)
    assert response.status_code == 202, response.get_json()
    assert len(response.get_json()["payments"]) == 1000
    outcomes = wait_for_outcomes(make_uow, [r["reference"] for r in rows], workers=[worker])
    assert {o.status for o in outcomes.values()} == {"applied"}
    assert balance(make_uow, account.number) == Decimal("1250.00")
