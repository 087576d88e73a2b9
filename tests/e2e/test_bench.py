"""`python -m bench --quick --json` end to end: every stage measured, every correctness check passed.

Times and ratios depend on the machine and on what else runs on it, so no test asserts one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("pgbench", "noop", "single", "file", "payroll", "hot", "latency", "memory", "api")
PROJECT_STAGES = ("single", "file", "payroll", "hot", "latency", "memory")


@pytest.fixture(scope="module")
def quick_run() -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=ROOT,
        env={key: value for key, value in os.environ.items() if key != "BENCH_ROWS"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON on stdout (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-5000:]}")
    return done.returncode, report, done.stderr


def test_quick_run_exits_0(quick_run: tuple[int, dict[str, Any], str]) -> None:
    code, report, stderr = quick_run
    assert code == 0, f"{report.get('error')}\n{stderr[-5000:]}"
    assert report["ok"] is True
    assert report["error"] is None


def test_every_stage_reports_a_positive_figure(quick_run: tuple[int, dict[str, Any], str]) -> None:
    _, report, _ = quick_run
    headlines = {figure["stage"]: figure["value"] for figure in report["figures"] if figure["headline"]}
    assert sorted(headlines) == sorted(STAGES)
    for stage in STAGES:
        assert headlines[stage] is not None, stage
        assert headlines[stage] > 0, stage


def test_every_project_stage_is_correct(quick_run: tuple[int, dict[str, Any], str]) -> None:
    _, report, _ = quick_run
    checks = {(check["stage"], check["name"]): check for check in report["checks"]}
    for stage in PROJECT_STAGES:
        for name in ("one outcome per row", "processor verify"):
            assert (stage, name) in checks, (stage, name)
            assert checks[stage, name]["ok"], checks[stage, name]
    assert all(check["ok"] for check in report["checks"]), [c for c in report["checks"] if not c["ok"]]
