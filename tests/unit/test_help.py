"""Help a user can always get: every command's --help works whatever the environment holds, and shows an example;
--version, and `python -m processor` / `python -m submit` as the console scripts."""

from __future__ import annotations

import runpy
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import click
import pytest
from pydantic import ValidationError

from processor.cli import cli as processor_cli
from processor.config import get_settings
from processor.terminal import reports_errors
from submit.cli import cli as submit_cli
from tests.clis import invoke
from tests.conftest import setting

CLIS = {"processor": processor_cli, "submit": submit_cli}
MALFORMED = {
    "DATABASE_URL": "bad",
    "CELERY_BROKER_URL": "bad",
    "PROCESSOR_LOG_LEVEL": "nope",
    "PROCESSOR_TIMEZONE": "Nowhere/Special",
    "PROCESSOR_CURRENCIES": "JPY",
}


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under a group, groups included, by the words that name it."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


EVERY_COMMAND = [
    pytest.param(program, words, command, id=" ".join((program, *words)))
    for program, group in CLIS.items()
    for words, command in [((), group), *commands(group)]
]
LEAVES = [p for p in EVERY_COMMAND if not isinstance(p.values[2], click.Group)]


@contextmanager
def malformed_settings() -> Iterator[None]:
    with ExitStack() as stack:
        for name, value in MALFORMED.items():
            stack.enter_context(setting(name, value))
        with pytest.raises(ValidationError):
            get_settings()  # the environment really is malformed: the help must not depend on it
        get_settings.cache_clear()
        yield


@pytest.mark.parametrize(("program", "words", "command"), EVERY_COMMAND)
def test_help_works_with_malformed_settings(program: str, words: tuple[str, ...], command: click.Command) -> None:
    with malformed_settings():
        result = invoke(CLIS[program], *words, "--help")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join((program, *words))} ")
    assert result.stderr == ""


@pytest.mark.parametrize(("program", "words", "command"), LEAVES)
def test_each_command_shows_one_example(program: str, words: tuple[str, ...], command: click.Command) -> None:
    result = invoke(CLIS[program], *words, "--help")

    example = result.stdout.split("Example:\n", 1)[1].splitlines()[0].strip()
    assert f"{example} ".startswith(" ".join((program, *words)) + " ")


@pytest.mark.parametrize(("program", "words", "command"), LEAVES)
def test_each_command_checks_the_settings_and_reports_errors(
    program: str, words: tuple[str, ...], command: click.Command
) -> None:
    # The groups do not read the settings (so that --help works): each command must, through reports_errors,
    # whose wrappers all run one code object.
    layers = []
    function = command.callback
    while function is not None:
        layers.append(function.__code__)
        function = getattr(function, "__wrapped__", None)
    assert reports_errors(lambda: None).__code__ in layers


@pytest.mark.parametrize("program", CLIS)
def test_version(program: str) -> None:
    with malformed_settings():
        result = invoke(CLIS[program], "--version")

    assert result.exit_code == 0
    assert result.stdout.startswith(f"{program}, version ")


def test_python_m_processor_is_the_console_script() -> None:
    # A process of its own, as a user runs it: the settings are malformed and --help still works.
    result = subprocess.run(
        [sys.executable, "-m", "processor", "account", "open", "--help"],
        env={"PATH": "/usr/bin:/bin", **MALFORMED},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: processor account open [OPTIONS]")


def test_python_m_submit_is_the_console_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `python -m submit --version` runs, in this process (a second interpreter costs seconds).
    monkeypatch.setattr(sys, "argv", ["submit", "--version"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("submit", run_name="__main__", alter_sys=True)

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("submit, version ")
