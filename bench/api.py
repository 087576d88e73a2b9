"""The HTTP API's own enqueue rate: POST /api/v1/payments and /api/v1/payment-batches through Flask's test client,
in this process, against the bench's database and Redis. No HTTP server or network stack is measured: this is what
one WSGI worker process (a gunicorn worker) can accept, each request authenticated, validated, looked up and sent."""

from __future__ import annotations

import json
import time

from bench.project import PROCESSOR, Bank, Context, plain_producer
from bench.system import BenchError, run_ok
from processor.messages import QUEUE
from processor.web import create_app
from submit.client import Client

BATCH = 1000


def api_stage(ctx: Context, bank: Bank, seconds: float) -> None:
    """Single payments for `seconds`, then batches of 1,000 for `seconds`; the queue is emptied after."""
    token = json.loads(
        run_ok([PROCESSOR, "api-token", "create", "--name", "bench", "--json"], ctx.env, ctx.workdir).stdout
    )
    url = ctx.env["DATABASE_URL"]
    app = create_app({"DATABASE_URL": url})
    producer = plain_producer(ctx.broker.url)
    app.extensions["processor.client"] = Client(app=producer, database_url=url)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token['token']}"}
    destination = bank.accounts[0]

    def body(n: int) -> dict[str, str]:
        return {"type": "deposit", "destination": destination, "amount": f"{1 + n % 500}.25", "currency": "GBP"}

    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        response = client.post(
            "/api/v1/payments", json=body(count), headers={**headers, "Idempotency-Key": f"api-{count}"}
        )
        if response.status_code != 202:
            raise BenchError(
                f"POST /api/v1/payments answered {response.status_code}: {response.get_data(as_text=True)}"
            )
        count += 1
    single = count / (time.monotonic() - started)

    batches, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        rows = [{"reference": f"api-b{batches}-{n}", **body(n)} for n in range(BATCH)]
        response = client.post("/api/v1/payment-batches", json={"payments": rows}, headers=headers)
        if response.status_code != 202:
            raise BenchError(f"POST /api/v1/payment-batches answered {response.status_code}")
        batches += 1
    elapsed = time.monotonic() - started
    producer.close()
    # Nothing after this stage drains them, and no other stage's counts may include them.
    ctx.broker.redis.delete(QUEUE)

    report = ctx.report
    report.add(
        "api",
        "POST /api/v1/payments (one payment each)",
        single,
        "requests/s",
        headline=True,
        note=f"{count} requests, Flask test client, one process",
    )
    report.add(
        "api",
        f"POST /api/v1/payment-batches ({BATCH} each)",
        batches / elapsed,
        "requests/s",
        note=f"{batches} batches",
    )
    report.add("api", "payments enqueued by batches", batches * BATCH / elapsed, "payments/s", headline=True)
