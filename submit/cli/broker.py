"""A broker that cannot be reached, said the same way by every command that sends."""

from __future__ import annotations

import functools
from collections.abc import Callable

from processor.terminal import P, R, broker_failure, unavailable
from submit.client import NotSent


def reports_broker_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A send that failed is one line naming CELERY_BROKER_URL, and exit code 69 (the broker was not reached)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NotSent as error:
            unavailable(broker_failure(error.__cause__ or error))

    return wrapper
