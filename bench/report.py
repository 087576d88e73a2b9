"""What a bench run found: figures with their ratios and targets, correctness checks, as a Rich table or JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

# Stage names, in the order they are measured; each has one headline figure.
STAGES = ("pgbench", "noop", "single", "file", "payroll", "hot", "latency", "memory")


@dataclass(frozen=True)
class Target:
    """A figure's goal, ARCHITECTURE.md section 12: on its ratio, or on its value."""

    text: str
    met: Callable[[float, float | None], bool]


@dataclass
class Figure:
    stage: str
    name: str
    value: float | None
    unit: str
    ratio: float | None = None
    ratio_to: str | None = None
    target: str | None = None
    met: bool | None = None
    headline: bool = False
    note: str | None = None


@dataclass
class Check:
    stage: str
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    settings: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None

    def add(
        self,
        stage: str,
        name: str,
        value: float | None,
        unit: str,
        *,
        reference: tuple[str, float | None] | None = None,
        target: Target | None = None,
        headline: bool = False,
        note: str | None = None,
    ) -> Figure:
        """Record a figure; with `reference` (its name and value) its ratio, with `target` whether it is met."""
        ratio = None
        ratio_to = None
        if reference is not None:
            ratio_to = reference[0]
            if value is not None and reference[1]:
                ratio = value / reference[1]
        met = None
        if target is not None and value is not None:
            met = target.met(value, ratio)
        figure = Figure(stage, name, value, unit, ratio, ratio_to, target.text if target else None, met, headline, note)
        self.figures.append(figure)
        return figure

    def check(self, stage: str, name: str, ok: bool, detail: str = "") -> Check:
        """Record a correctness check; any failed one makes the run fail."""
        check = Check(stage, name, ok, detail)
        self.checks.append(check)
        return check

    def headline(self, stage: str) -> float | None:
        """The value of a stage's headline figure, if it has been measured."""
        for figure in self.figures:
            if figure.stage == stage and figure.headline:
                return figure.value
        return None

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "figures": [asdict(figure) for figure in self.figures],
            "checks": [asdict(check) for check in self.checks],
            "ok": self.ok,
            "error": self.error,
        }

    def render(self, console: Console) -> None:
        """The figures and the checks as two Rich tables."""
        settings = ", ".join(f"{key} {value}" for key, value in self.settings.items())
        table = Table(
            "stage", "figure", "value", "unit", "ratio", "target", "met", title="make bench", caption=settings
        )
        previous = None
        for figure in self.figures:
            if previous is not None and figure.stage != previous:
                table.add_section()
            previous = figure.stage
            name = f"[bold]{figure.name}[/]" if figure.headline else figure.name
            if figure.note:
                name += f"\n[dim]{figure.note}[/]"
            ratio = "" if figure.ratio is None else f"{figure.ratio:.2f}x {figure.ratio_to}"
            met = {None: "", True: "[green]yes[/]", False: "[red]no[/]"}[figure.met]
            table.add_row(figure.stage, name, _number(figure.value), figure.unit, ratio, figure.target or "", met)
        console.print(table)
        checks = Table("stage", "check", "result", "detail", title="correctness")
        for check in self.checks:
            checks.add_row(check.stage, check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail)
        console.print(checks)
        if self.error:
            console.print(f"[red]error:[/] {self.error}")


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def at_least(times: float) -> Target:
    """A ratio of at least `times` its reference."""
    return Target(f"≥ {times:.1f}x", lambda _value, ratio: ratio is not None and ratio >= times)


def below(limit: float, unit: str) -> Target:
    """A value under `limit`."""
    return Target(f"< {limit:g} {unit}", lambda value, _ratio: value < limit)


def flat(tolerance: float) -> Target:
    """A ratio to the small run's figure of at most `tolerance` (memory that does not grow with the file)."""
    return Target(f"flat (≤ {tolerance:g}x)", lambda _value, ratio: ratio is not None and ratio <= tolerance)
