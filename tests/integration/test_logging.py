"""Every state change logs one structured line: the entity or reference, the outcome, the actor."""

from __future__ import annotations

import io
import json
import logging

import pytest

from processor.logs import configure_logging, log_event
from processor.services.accounts import change_status
from processor.services.customers import register_customer
from tests.builders import UowFactory, make_account, pay
from tests.requests import deposit, withdrawal


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        {
            key: getattr(r, key)
            for key in ("event", "actor", "reference", "outcome", "reason", "account", "customer")
            if hasattr(r, key)
        }
        for r in caplog.records
        if r.name == "processor"
    ]


class TestAuditLines:
    def test_customer_registration(self, make_uow: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="processor")
        customer = register_customer(make_uow(), "Ada Lovelace", "ada@example.com", "alice")
        assert events(caplog) == [{"event": "customer.registered", "actor": "alice", "customer": customer.number}]

    def test_status_change(self, make_uow: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
        account = make_account(make_uow)
        caplog.set_level(logging.INFO, logger="processor")
        change_status(make_uow(), account.number, "frozen", "fraud", "alice")
        assert events(caplog) == [{"event": "account.status_changed", "actor": "alice", "account": account.number}]

    def test_one_line_per_payment_outcome(self, make_uow: UowFactory, caplog: pytest.LogCaptureFixture) -> None:
        account = make_account(make_uow)
        caplog.set_level(logging.INFO, logger="processor")
        pay(make_uow, deposit(account.number, "5.00", reference="a"), withdrawal(account.number, "9.00", reference="b"))
        pay(make_uow, deposit(account.number, "5.00", reference="a"), deposit(account.number, "6.00", reference="a"))
        assert [(e["event"], e["reference"], e["outcome"], e["reason"]) for e in events(caplog)] == [
            ("payment.applied", "a", "applied", None),
            ("payment.rejected", "b", "rejected", "insufficient_funds"),
            ("payment.duplicate", "a", "applied", None),
            ("payment.conflict", "a", "applied", None),
        ]
        assert {e["actor"] for e in events(caplog)} == {"processor"}


class TestJsonFormat:
    def test_each_line_is_a_json_object_with_the_fields(self) -> None:
        logger = logging.getLogger("processor")
        saved = (logger.handlers[:], logger.level, logger.propagate)
        stream = io.StringIO()
        try:
            configure_logging("json", "INFO")
            logger.handlers[0].setStream(stream)  # type: ignore[attr-defined]
            log_event("payment.applied", reference="ref-1", outcome="applied", actor="worker-1")
        finally:
            logger.handlers[:], logger.level, logger.propagate = saved
        line = json.loads(stream.getvalue())
        assert line["event"] == "payment.applied"
        assert (line["reference"], line["outcome"], line["actor"]) == ("ref-1", "applied", "worker-1")
        assert line["levelname"] == "INFO"
