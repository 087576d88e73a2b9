"""processor api-token create, list and revoke as an operator meets them."""

from __future__ import annotations

from processor.cli import cli
from processor.services.reading import list_audit
from processor.services.tokens import authenticate
from tests.builders import UowFactory
from tests.clis import error_line, invoke, invoke_json


def test_create_shows_the_secret_once_list_never_and_revoke_ends_it(make_uow: UowFactory) -> None:
    created = invoke_json(cli, "api-token", "create", "--name", "payroll", "--actor", "ops")
    assert created["name"] == "payroll"
    secret = created["token"]
    assert len(secret) >= 40
    assert authenticate(make_uow(), secret) is not None

    listed = invoke_json(cli, "api-token", "list")
    assert [(t["id"], t["name"], t["active"]) for t in listed] == [(created["id"], "payroll", True)]
    assert secret not in invoke(cli, "api-token", "list").stdout
    assert secret not in str(listed)

    revoked = invoke_json(cli, "api-token", "revoke", str(created["id"]), "--actor", "ops")
    assert revoked["active"] is False
    assert authenticate(make_uow(), secret) is None
    actions = [(e.action, e.actor, e.entity) for e in list_audit(make_uow()).items]
    assert actions == [
        ("api_token.revoked", "ops", str(created["id"])),
        ("api_token.created", "ops", str(created["id"])),
    ]
    assert all(secret not in str(e.details) for e in list_audit(make_uow()).items)


def test_revoking_an_unknown_token_or_an_empty_name_is_one_line_and_exit_1(make_uow: UowFactory) -> None:
    result = invoke(cli, "api-token", "revoke", "999999")
    assert result.exit_code == 1
    assert "no API token has the id 999999" in error_line(result.stderr)
    result = invoke(cli, "api-token", "create", "--name", "  ")
    assert result.exit_code == 1
    assert error_line(result.stderr).startswith("error: name:")
