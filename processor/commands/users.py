"""user create: who may log in to the operator console. Thin over services.users."""

from __future__ import annotations

import os
import re

import click

from processor.bootstrap import unit_of_work
from processor.commands.options import actor_option
from processor.domain.users import Role
from processor.services.users import create_user
from processor.terminal import console, emit, fail, json_option, reports_errors, settings_or_exit


@click.group()
def user() -> None:
    """Console users: who may log in to the operator web console, as a viewer or an operator."""


def _variable_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        # Not repeated in the message: what was typed here may be the password itself.
        raise click.BadParameter("give the name of an environment variable (the password is never an option)")
    return value


@user.command("create")
@click.option("--username", required=True, help="2 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter.")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True, help="viewer reads; operator acts.")
@click.option(
    "--password-env",
    default=None,
    metavar="VARIABLE",
    callback=_variable_name,
    help="Read the password from this environment variable [default: ask for it, twice, without echo].",
)
@actor_option
@json_option
@reports_errors
def user_create(username: str, role: str, password_env: str | None, actor: str | None, as_json: bool) -> None:
    """Create a console user; the password (12 characters or more) is stored only as an Argon2id hash.

    \b
    Example:
      processor user create --username alice --role operator
    """
    if password_env is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = os.environ.get(password_env, "")
        if not password:
            fail(f"{password_env} is not set or is empty: put the password in it, or leave out --password-env")
    made = create_user(unit_of_work(), username, role, password, actor or settings_or_exit().actor)
    emit(
        as_json,
        {"username": made.username, "role": made.role.value},
        lambda: console.print(f"user {made.username} created ({made.role.value})"),
    )
