"""Which .env file the settings read: PROCESSOR_ENV_FILE's, or the working directory's, and no other."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processor.config import Settings

PROCESSOR = str(Path(sys.executable).with_name("processor"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting this test writes in a file comes from the real environment, and the working directory is empty."""
    for name in ("PROCESSOR_ENV_FILE", "PROCESSOR_DEFAULT_CURRENCY"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "project" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)


def env_file(path: Path, currency: str) -> Path:
    path.write_text(f"PROCESSOR_DEFAULT_CURRENCY={currency}\n")
    return path


def test_the_working_directorys_env_is_read() -> None:
    env_file(Path.cwd() / ".env", "EUR")

    assert Settings().default_currency == "EUR"


def test_an_env_in_a_parent_directory_is_not_read() -> None:
    env_file(Path.cwd().parent / ".env", "EUR")
    env_file(Path.cwd().parent.parent / ".env", "USD")

    assert Settings().default_currency == "GBP"


def test_the_named_file_is_read_instead_of_the_working_directorys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file(Path.cwd() / ".env", "EUR")
    monkeypatch.setenv("PROCESSOR_ENV_FILE", str(env_file(tmp_path / "processor.env", "USD")))

    assert Settings().default_currency == "USD"


def test_set_but_empty_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    env_file(Path.cwd() / ".env", "EUR")
    monkeypatch.setenv("PROCESSOR_ENV_FILE", "")

    assert Settings().default_currency == "GBP"


def test_the_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    env_file(Path.cwd() / ".env", "EUR")
    monkeypatch.setenv("PROCESSOR_DEFAULT_CURRENCY", "USD")

    assert Settings().default_currency == "USD"


def test_a_named_file_that_is_missing_is_one_line_from_the_cli(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.env"
    env = {**os.environ, "PROCESSOR_ENV_FILE": str(missing)}

    result = subprocess.run([PROCESSOR, "verify"], env=env, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: configuration: PROCESSOR_ENV_FILE: {str(missing)!r} is not a file "
        "(unset it to read .env in the working directory)"
    ]
