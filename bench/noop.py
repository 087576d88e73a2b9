"""The Celery reference: a task that does nothing but count itself, run as `celery -A bench.noop worker`.

Settings as ARCHITECTURE.md section 12 has them: late acks, JSON, task events on, Celery's default prefetch
multiplier (4), no result backend. The broker is CELERY_BROKER_URL, the bench's own Redis database.
"""

from __future__ import annotations

import functools

import redis
from celery import Celery

QUEUE = "bench.noop"
TASK = "bench.noop"
DONE_KEY = "bench:noop:done"
FIRST_KEY = "bench:noop:first"
LAST_KEY = "bench:noop:last"
KEYS = (DONE_KEY, FIRST_KEY, LAST_KEY)

# One round trip per task, timed by Redis's clock, so the first and last completion come from one clock and in
# the order Redis saw them, whichever pool process ran them.
_RECORD = """
local done = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local stamp = now[1] .. '.' .. string.format('%06d', now[2])
redis.call('SET', KEYS[2], stamp, 'NX')
redis.call('SET', KEYS[3], stamp)
return done
"""


def make_app(broker_url: str | None = None) -> Celery:
    """The no-op app; a producer makes its own with the same settings, so its messages match."""
    app = Celery("bench_noop", broker=broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_ignore_result=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
    )
    return app


app = make_app()


@functools.cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url)


def noop() -> None:
    """Record one completion."""
    _client().eval(_RECORD, len(KEYS), *KEYS)


app.task(name=TASK)(noop)
