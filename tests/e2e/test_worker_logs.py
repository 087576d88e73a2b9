"""A worker started with PROCESSOR_LOG_FORMAT=json logs JSON lines only: Celery's own and the processor's."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from celery import Celery

from processor.messages import QUEUE
from tests.builders import UowFactory, make_account
from tests.e2e.conftest import StartWorker, wait_for_outcomes
from tests.e2e.faults import wait_until


def json_lines(output: str) -> list[dict[str, Any]]:
    """Every line from the first JSON one on, parsed: each must be a JSON object. Before it, only what a process
    prints before Celery has set up logging (its warning about running as root) may appear."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    assert all("SecurityWarning" in line or not line.startswith("[") for line in lines[:first]), lines[:first]
    parsed = [json.loads(line) for line in lines[first:]]
    assert all(isinstance(p, dict) for p in parsed)
    return parsed


def test_json_worker_logs(make_uow: UowFactory, producer: Celery, start_worker: StartWorker) -> None:
    account = make_account(make_uow)
    worker = start_worker(concurrency=1, PROCESSOR_LOG_FORMAT="json", PROCESSOR_GROUP_SIZE="1")

    kwargs = {"reference": "json-log-1", "account": account.number, "amount": "5.00", "currency": "GBP"}
    producer.send_task("payments.deposit", kwargs=kwargs, queue=QUEUE)
    wait_for_outcomes(make_uow, ["json-log-1"], workers=[worker])
    # Celery logs a task's success after it has returned, so after the commit that made the outcome visible.
    wait_until(lambda: '"celery.app.trace"' in worker.output(), 10, "the task's success line", [worker])
    lines = json_lines(worker.output())

    assert any(line["name"] == "celery.apps.worker" and line["message"].endswith(" ready.") for line in lines)
    [received] = [line for line in lines if line["name"] == "celery.worker.strategy"]
    assert received["data"]["name"] == "payments.deposit"
    assert "'reference': 'json-log-1'" in received["data"]["kwargs"]
    [succeeded] = [line for line in lines if line["name"] == "celery.app.trace"]
    assert succeeded["data"]["id"] == received["data"]["id"]
    [applied] = [line for line in lines if line.get("event") == "payment.applied"]
    assert (applied["name"], applied["reference"], applied["levelname"]) == ("processor", "json-log-1", "INFO")
    [starting] = [line for line in lines if line.get("event") == "worker.starting"]
    assert starting["queues"] == [QUEUE]
    for line in lines:
        at = datetime.fromisoformat(line["asctime"])  # RFC 3339 with its offset, as every time shown
        assert at.utcoffset() is not None
