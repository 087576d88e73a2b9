"""Helpers for testing the command lines as a user meets them."""

from __future__ import annotations

import json
from typing import Any

import click
from click.testing import CliRunner, Result


def invoke(command: click.Command, *args: str) -> Result:
    """Run a CLI in-process; an unexpected exception propagates instead of hiding behind exit code 1."""
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def invoke_json(command: click.Command, *args: str) -> Any:
    """Run a CLI with --json; it must succeed with nothing on stderr. Returns the parsed output."""
    result = invoke(command, *args, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def error_line(stderr: str) -> str:
    """The single line a failed command must print on stderr, starting with 'error:'."""
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def mistype(number: str) -> str:
    """The account number with its last digit changed: a single-digit slip the check digit must catch."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)
