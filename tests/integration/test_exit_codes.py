"""The exit codes of ARCHITECTURE section 9, which scripts branch on: 0 done, 1 refused or not found, 2 usage,
69 (EX_UNAVAILABLE) when the database or the broker cannot be reached; each failure is one line on stderr."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import kombu.exceptions
import pytest

import processor.celery
from processor.cli import cli as processor_cli
from processor.config import get_settings
from processor.terminal import reports_errors
from submit.cli import cli as submit_cli
from tests.builders import UowFactory, make_account
from tests.clis import error_line, invoke
from tests.conftest import setting

PASSWORD = "s3cret-pw"
# Nothing listens on port 1: the connection is refused at once.
CLOSED_DATABASE = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:1/abcbank"
CLOSED_BROKER = f"redis://:{PASSWORD}@127.0.0.1:1/0"


@pytest.fixture
def closed_database() -> Iterator[None]:
    with setting("DATABASE_URL", CLOSED_DATABASE):
        yield


@pytest.fixture
def closed_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # submit sends through processor.celery.app, made once per process: one of its own, on the closed port.
    with setting("CELERY_BROKER_URL", CLOSED_BROKER):
        app = processor.celery.make_app(get_settings())
        monkeypatch.setattr(processor.celery, "app", app)
        yield
        app.close()


def unavailable_line(result: click.testing.Result, variable: str) -> str:
    assert result.exit_code == 69, result.output
    line = error_line(result.stderr)
    assert variable in line
    assert PASSWORD not in result.stdout + result.stderr
    return line


@pytest.mark.usefixtures("closed_database")
class TestDatabaseUnreachable:
    @pytest.mark.parametrize(
        ("command", "args"),
        [
            (processor_cli, ["verify"]),
            (processor_cli, ["customer", "register", "--name", "Ada", "--email", "ada@example.com", "--json"]),
            (processor_cli, ["db", "upgrade"]),
            (processor_cli, ["stats", "--json"]),
            (submit_cli, ["status", "ref-1", "--json"]),
        ],
        ids=["processor verify", "processor customer register", "processor db upgrade", "processor stats", "submit"],
    )
    def test_exit_69_naming_the_variable_without_the_password(self, command: click.Command, args: list[str]) -> None:
        line = unavailable_line(invoke(command, *args), "DATABASE_URL")

        assert "postgresql+psycopg2://postgres:***@127.0.0.1:1/abcbank" in line
        assert "Connection refused" in line


@pytest.mark.usefixtures("closed_broker")
class TestBrokerUnreachable:
    def test_a_payment_is_not_sent_exit_69_with_the_reference_to_send_again(self, make_uow: UowFactory) -> None:
        account = make_account(make_uow)

        result = invoke(submit_cli, "deposit", "--account", account.number, "--amount", "1", "--reference", "x-69")

        line = unavailable_line(result, "CELERY_BROKER_URL")
        assert "redis://:**@127.0.0.1:1/0" in line
        assert "--reference x-69" in line

    def test_a_file_exit_69(self, make_uow: UowFactory, tmp_path: Path) -> None:
        account = make_account(make_uow)
        path = tmp_path / "pay.csv"
        path.write_text(f"reference,type,source,destination,amount,currency\nf-69,deposit,,{account.number},1.00,GBP\n")

        unavailable_line(invoke(submit_cli, "file", str(path), "--json"), "CELERY_BROKER_URL")


class TestTheOtherCodes:
    @pytest.mark.parametrize(
        ("command", "args", "code"),
        [
            (processor_cli, ["verify"], 0),
            (processor_cli, ["account", "show", "100000011"], 1),  # well-formed, never opened: not found
            (processor_cli, ["account", "show", "100000012"], 1),  # a mistyped check digit: refused
            (processor_cli, ["account", "open", "--customer", "1"], 2),  # --type missing
            (processor_cli, ["stats", "--since", "1h", "--from", "2026-01-01"], 2),
            (processor_cli, ["stats", "--from", "2026-12-02", "--to", "2026-12-01"], 2),
            (processor_cli, ["stats", "--since", "9999999999w"], 2),
            (processor_cli, ["no-such-command"], 2),
            (submit_cli, ["status", "ref-1"], 0),  # pending is an answer
            (submit_cli, ["status", "not a reference"], 1),
            (submit_cli, ["deposit", "--account", "100000011"], 2),  # --amount missing
        ],
    )
    def test_exit_code(self, make_uow: UowFactory, command: click.Command, args: list[str], code: int) -> None:
        result = invoke(command, *args)

        assert result.exit_code == code, result.output
        if code == 1:
            error_line(result.stderr)


def test_a_broker_error_in_any_command_is_69(closed_broker: None) -> None:
    # For the processor's commands that will send (held resend): kombu's error, whatever raised it.
    @click.command()
    @reports_errors
    def sends() -> None:
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    line = unavailable_line(invoke(sends), "CELERY_BROKER_URL")
    assert line == (
        "error: cannot send to the broker at redis://:**@127.0.0.1:1/0 (CELERY_BROKER_URL): Error 111 connecting to"
        " 127.0.0.1:1. Connection refused."
    )
