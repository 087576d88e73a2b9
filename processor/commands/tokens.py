"""api-token create, list and revoke: the bearer tokens upstream systems present to the HTTP API."""

from __future__ import annotations

import click
from rich.table import Table

from processor.bootstrap import unit_of_work
from processor.commands.options import actor_option
from processor.presenters import api_token_json
from processor.services.tokens import create_token, list_tokens, revoke_token
from processor.terminal import console, emit, json_option, reports_errors, settings_or_exit, untrusted


@click.group("api-token")
def api_token() -> None:
    """Bearer tokens of the HTTP API (Authorization: Bearer TOKEN), stored as their SHA-256 only."""


@api_token.command("create")
@click.option("--name", required=True, help="Who uses the token (an upstream system); shown by list.")
@actor_option
@json_option
@reports_errors
def token_create(name: str, actor: str | None, as_json: bool) -> None:
    """Make a token and print its secret, this once: it is stored hashed and cannot be shown again.

    \b
    Example:
      processor api-token create --name payroll --json
    """
    token, secret = create_token(unit_of_work(), name, actor or settings_or_exit().actor)
    emit(
        as_json,
        {"id": token.id, "name": token.name, "token": secret},
        lambda: console.print(
            f"token {token.id} ({token.name}), shown once, keep it secret:\n{secret}", markup=False, highlight=False
        ),
    )


@api_token.command("list")
@json_option
@reports_errors
def token_list(as_json: bool) -> None:
    """List the tokens, revoked ones too (never their secrets).

    \b
    Example:
      processor api-token list --json
    """
    tokens = list_tokens(unit_of_work())

    def render() -> None:
        table = Table("id", "name", "created", "by", "revoked", title="API tokens")
        for t in tokens:
            row = api_token_json(t)
            table.add_row(str(t.id), untrusted(t.name), row["created_at"], untrusted(t.created_by), row["revoked_at"])
        console.print(table if tokens else "no API tokens")

    emit(as_json, [api_token_json(t) for t in tokens], render)


@api_token.command("revoke")
@click.argument("token_id", type=int, metavar="ID")
@actor_option
@json_option
@reports_errors
def token_revoke(token_id: int, actor: str | None, as_json: bool) -> None:
    """Revoke a token: the API refuses it from the next request on (401). Audited.

    \b
    Example:
      processor api-token revoke 3
    """
    token = revoke_token(unit_of_work(), token_id, actor or settings_or_exit().actor)
    emit(
        as_json, api_token_json(token), lambda: console.print(f"token {token.id} ({token.name}) revoked", markup=False)
    )
