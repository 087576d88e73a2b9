"""Every time the CLIs show, in JSON and in tables, is RFC 3339 with its offset, in PROCESSOR_TIMEZONE."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from processor.cli import cli
from tests.builders import UowFactory, make_account
from tests.clis import invoke, invoke_json
from tests.conftest import setting

NEW_YORK = ZoneInfo("America/New_York")


def test_statement_json_and_table_show_the_zone_s_offset(make_uow: UowFactory) -> None:
    account = make_account(make_uow, balance="10.00")

    with setting("PROCESSOR_TIMEZONE", "America/New_York"):
        [entry] = invoke_json(cli, "account", "statement", account.number)["items"]
        table = invoke(cli, "account", "statement", account.number)

    at = datetime.fromisoformat(entry["at"])
    assert at.utcoffset() == at.astimezone(NEW_YORK).utcoffset()  # -05:00 or -04:00, whichever is in force
    assert entry["at"] == at.astimezone(NEW_YORK).isoformat(timespec="microseconds")
    assert at.astimezone(NEW_YORK).isoformat(timespec="seconds") in table.stdout
