"""What every CLI of the project shares: the console, one-line errors, exit codes and --json."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar, NoReturn, ParamSpec, TypeVar

import alembic.util.exc
import click
import kombu.exceptions
import pydantic
import sqlalchemy.exc
from kombu.utils.url import maybe_sanitize_url
from rich.console import Console
from rich.text import Text

from processor.config import Settings, describe, get_settings
from processor.domain.errors import ProcessorError, Unavailable
from processor.logs import configure_logging

# Piped or redirected output gets a wide fixed width, so that tables are not cut to 80 columns in logs.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

P = ParamSpec("P")
R = TypeVar("R")


# ARCHITECTURE section 9: 1 refused or not found, 2 usage (Click's own), 69 a database or broker not reached.
EX_UNAVAILABLE = os.EX_UNAVAILABLE


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def unavailable(message: str) -> NoReturn:
    """A database or broker that cannot be reached: one line, and the exit code a script can retry on."""
    fail(message, EX_UNAVAILABLE)


def settings_or_exit() -> Settings:
    """The settings; a configuration error is one line on stderr and exit code 1, not a traceback."""
    try:
        return get_settings()
    except pydantic.ValidationError as error:
        fail(f"configuration: {describe(error)}")


def database_failure(error: sqlalchemy.exc.DBAPIError) -> str:
    url = sqlalchemy.engine.make_url(settings_or_exit().database_url).render_as_string(hide_password=True)
    reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return f"cannot use the database at {url} (DATABASE_URL): {reason}"


def broker_failure(error: BaseException) -> str:
    url = maybe_sanitize_url(settings_or_exit().celery_broker_url)
    return f"cannot send to the broker at {url} (CELERY_BROKER_URL): {error}"


INSUFFICIENT_PRIVILEGE = "42501"


def first_line(error: BaseException | None) -> str:
    """An error's first line, without the context PostgreSQL adds below it."""
    return (str(error).strip().splitlines() or [repr(error)])[0]


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Every command's start and end: the settings checked and logging set up (here, not in the group, so that
    --help works whatever the environment holds), then the errors a user can act on as one line on stderr with
    the exit code of ARCHITECTURE section 9."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        config = settings_or_exit()
        configure_logging(config.log_format, config.log_level, default_level="WARNING")
        try:
            return command(*args, **kwargs)
        except Unavailable as error:
            unavailable(str(error))
        except ProcessorError as error:
            fail(str(error))
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as error:
            # Refused, timed out, gone away, or no such database: nothing the request itself can change.
            unavailable(database_failure(error))
        except kombu.exceptions.OperationalError as error:
            unavailable(broker_failure(error))
        except alembic.util.exc.CommandError as error:
            fail(f"migration: {error}")
        except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.InternalError) as error:
            if getattr(error.orig, "pgcode", None) == INSUFFICIENT_PRIVILEGE:
                role = sqlalchemy.engine.make_url(config.database_url).username
                fail(
                    f"the database role {role} may not do this ({first_line(error.orig)}): connect as the role for "
                    "this program (README, 'Database roles and passwords')"
                )
            if "does not exist" in str(error.orig):
                fail("the database schema is missing or out of date: run 'processor db upgrade'")
            raise

    return wrapper


def json_option(command: Callable[P, R]) -> Callable[P, R]:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(command)


def emit(as_json: bool, data: Any, render: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render()


class Seconds(click.FloatRange):
    """A finite number of seconds in a range: NaN, which compares false with every bound, and infinity are refused."""

    name = "seconds"

    def __init__(self, min: float = 0.0, max: float = 7 * 24 * 3600.0) -> None:
        super().__init__(min=min, max=max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return number


class Duration(click.ParamType[timedelta, "str | timedelta"]):
    """A length of time such as 90s, 30m, 24h, 7d, 2w or 1h30m, up to 100 years (so that now minus it is a date)."""

    name = "duration"
    LONGEST = timedelta(days=36525)
    _PART = re.compile(r"(\d+)([smhdw])")
    _UNITS: ClassVar[dict[str, str]] = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

    def convert(self, value: str | timedelta, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        parts = self._PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration such as 30m, 24h or 7d", param, ctx)
        try:
            length = sum((timedelta(**{self._UNITS[unit]: int(n)}) for n, unit in parts), timedelta())
        except OverflowError:
            length = self.LONGEST * 2
        if length > self.LONGEST:
            self.fail(f"{value!r} is longer than 100 years", param, ctx)
        if length <= timedelta():
            self.fail(f"{value!r} is not longer than zero", param, ctx)
        return length


class Moment(click.ParamType["date | datetime", "str | date"]):
    """A date (2026-12-01) or an RFC 3339 time (2026-12-01T09:30:00+01:00); without an offset it is read in
    PROCESSOR_TIMEZONE, by `in_zone` once the settings have been checked."""

    name = "date|time"

    def convert(self, value: str | date, param: click.Parameter | None, ctx: click.Context | None) -> date | datetime:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date (2026-12-01) or a time (2026-12-01T09:30:00+01:00)", param, ctx)


def in_zone(value: date | datetime, zone: tzinfo, end: bool = False) -> datetime:
    """A Moment as an aware datetime. A date is its midnight in `zone`; as the end of a period, the next
    midnight, so that `--to 2026-12-01` includes that whole day."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time(), zone)


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def untrusted(value: object) -> Text:
    """What a sender wrote, made safe for an operator's terminal: Rich markup is not read in it, and control
    characters (an escape sequence could rewrite the screen) are shown as escapes."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))
    return Text(text)
