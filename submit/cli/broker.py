"""A broker that cannot be reached, said the same way by every command that sends."""

from __future__ import annotations

import functools
from collections.abc import Callable

import kombu.exceptions
from kombu.utils.url import maybe_sanitize_url

from processor.terminal import P, R, fail, settings_or_exit
from submit.client import NotSent


def broker_failure(error: BaseException) -> str:
    url = maybe_sanitize_url(settings_or_exit().celery_broker_url)
    return f"cannot send to the broker at {url} (CELERY_BROKER_URL): {error}"


def reports_broker_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A broker that cannot be reached is one line on stderr and exit code 1, like every other failure."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except kombu.exceptions.OperationalError as error:
            fail(broker_failure(error))
        except NotSent as error:
            fail(broker_failure(error.__cause__ or error))

    return wrapper
