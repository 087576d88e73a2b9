"""End-to-end: `make demo` runs on a shared broker without touching anyone else's queue."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import redis
from sqlalchemy.engine import make_url

from processor.db import admin
from processor.messages import QUEUE
from tests.conftest import SERVER_URL


def test_demo_takes_nothing_from_the_payments_queue_and_leaves_nothing_behind(broker_url: str) -> None:
    database = make_url(SERVER_URL).set(database=f"abcbank_test_{uuid.uuid4().hex[:8]}_demo")
    url = database.render_as_string(hide_password=False)
    client = redis.Redis.from_url(broker_url)
    # Someone else's payment, waiting in the contract's queue of the broker the demo is pointed at.
    client.lpush(QUEUE, b"someone else's message")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "processor.demo"],
            env={**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": broker_url},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "verify: ok" in result.stdout
        assert client.lrange(QUEUE, 0, -1) == [b"someone else's message"]
        assert [key for key in client.scan_iter() if b"abcbank-demo-" in key] == []
    finally:
        client.delete(QUEUE)
        client.close()
        admin.drop_database(url)
