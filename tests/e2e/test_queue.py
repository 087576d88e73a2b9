"""A real worker applies requests sent by a plain Celery producer by task name."""

from __future__ import annotations

import time

from celery import Celery

from processor.domain.accounts import Account
from processor.services.payments import get_outcomes
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import StartWorker, wait_for_outcomes
from tests.e2e.traffic import assert_exactly_once, conflict_counts, mixed_traffic, send


def bank(make_uow: UowFactory) -> list[Account]:
    types = [("standard", "500.00"), ("savings", "800.00"), ("reward", "300.00"), ("standard", "0.00")]
    return [make_account(make_uow, type=t, balance=b) for t, b in types * 4]


class TestMixedTraffic:
    def test_thousand_requests_with_duplicates_and_conflicts_have_one_effect_each(
        self, make_uow: UowFactory, producer: Celery, start_worker: StartWorker
    ) -> None:
        accounts = bank(make_uow)
        traffic = mixed_traffic(accounts, 1000, "mixed")
        worker = start_worker()
        started = time.monotonic()

        send(producer, traffic.all())
        outcomes = wait_for_outcomes(make_uow, traffic.references, workers=[worker])
        # The last resends may still be in flight when every reference has its outcome.
        conflicted = {kwargs["reference"] for _, kwargs in traffic.conflicts}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            outcomes = get_outcomes(make_uow(), traffic.references)
            if set(conflict_counts(outcomes)) == conflicted:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started

        assert_exactly_once(make_uow, accounts, traffic, outcomes)
        assert set(conflict_counts(outcomes)) == conflicted
        print(f"\n{len(traffic.all())} messages, {len(traffic.references)} references in {elapsed:.1f} s")
