"""What every CLI of the project shares: the console, one-line errors, exit codes and --json."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import alembic.util.exc
import click
import pydantic
import sqlalchemy.exc
from rich.console import Console
from rich.text import Text

from processor.config import Settings, describe, get_settings
from processor.domain.errors import ProcessorError

# Piped or redirected output gets a wide fixed width, so that tables are not cut to 80 columns in logs.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def settings_or_exit() -> Settings:
    """The settings; a configuration error is one line on stderr and exit code 1, not a traceback."""
    try:
        return get_settings()
    except pydantic.ValidationError as error:
        fail(f"configuration: {describe(error)}")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can act on into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ProcessorError as error:
            fail(str(error))
        except sqlalchemy.exc.OperationalError as error:
            url = sqlalchemy.engine.make_url(settings_or_exit().database_url).render_as_string(hide_password=True)
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            fail(f"cannot use the database at {url} (DATABASE_URL): {reason}")
        except alembic.util.exc.CommandError as error:
            fail(f"migration: {error}")
        except sqlalchemy.exc.ProgrammingError as error:
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


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def untrusted(value: object) -> Text:
    """What a sender wrote, made safe for an operator's terminal: Rich markup is not read in it, and control
    characters (an escape sequence could rewrite the screen) are shown as escapes."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))
    return Text(text)
