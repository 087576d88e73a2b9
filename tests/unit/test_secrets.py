"""A password in a URL setting is never printed: not by the CLIs, not by a worker that cannot start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processor.config import redacted

BIN = Path(sys.executable).parent
PASSWORD = "s3cret-pw"


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    return subprocess.run(command, env={**environment, **env}, capture_output=True, text=True, timeout=60)


class TestRedacted:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (f"redis://:{PASSWORD}@[bad/0", "redis://:***@[bad/0"),
            (f"redis://user:{PASSWORD}@host:notaport/0", "redis://user:***@host:notaport/0"),
            (f"postgresql://u:{PASSWORD}@h/db", "postgresql://u:***@h/db"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ],
    )
    def test_the_password_is_replaced(self, url: str, shown: str) -> None:
        assert redacted(url) == shown


class TestBadSettingsAtStart:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("CELERY_BROKER_URL", f"redis://user:{PASSWORD}@host:notaport/0"),
            ("CELERY_BROKER_URL", f"redis://:{PASSWORD}@[bad/0"),
            ("DATABASE_URL", f"postgresql+psycopg2://u:{PASSWORD}@h:xx/db"),
        ],
    )
    def test_a_worker_says_one_line_without_the_password(self, variable: str, value: str) -> None:
        result = run([str(BIN / "celery"), "-A", "processor", "worker"], **{variable: value})

        assert result.returncode == 1
        assert PASSWORD not in result.stdout + result.stderr
        assert result.stderr.splitlines() == [result.stderr.strip()]
        assert result.stderr.startswith(f"error: configuration: {variable}: ")

    @pytest.mark.parametrize(
        "command",
        [["submit", "deposit", "--account", "100000011", "--amount", "1"], ["processor", "customer", "show", "1"]],
    )
    def test_a_cli_says_one_line_without_the_password(self, command: list[str]) -> None:
        broker = f"redis://:{PASSWORD}@[bad/0"
        database = f"postgresql+psycopg2://u:{PASSWORD}@h:xx/db"

        result = run([str(BIN / command[0]), *command[1:]], CELERY_BROKER_URL=broker, DATABASE_URL=database)

        assert result.returncode == 1
        assert PASSWORD not in result.stdout + result.stderr
        assert result.stderr.startswith("error: configuration: ")
        assert "Traceback" not in result.stderr
