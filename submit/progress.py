"""How a file submission reports its progress: the protocol a run calls, and the two ways a user sees it."""

from __future__ import annotations

import time
from typing import Protocol

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress(Protocol):
    def update(self, stage: str, done: int, total: int | None, counts: dict[str, int]) -> None: ...


class PlainProgress:
    """Progress for logs and pipes: a line now and then on stderr, never a redrawn bar."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.last = 0.0

    def update(self, stage: str, done: int, total: int | None, counts: dict[str, int]) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        if now - self.last < self.every and not finished:
            return
        self.last = now
        of = "" if total is None else f" of {total}"
        verb = "read" if stage == "read" else "have an outcome"
        details = ", ".join(f"{name} {count}" for name, count in counts.items())
        click.echo(f"{done}{of} rows {verb} ({details})", err=True)


class BarProgress:
    """Progress on a terminal: a Rich bar per stage, on stderr so that --json output stays clean."""

    def __init__(self) -> None:
        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self.bar.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.bar.stop()

    def update(self, stage: str, done: int, total: int | None, counts: dict[str, int]) -> None:
        text = "  ".join(f"{name} {count}" for name, count in counts.items())
        if stage not in self.tasks:
            label = "reading and sending" if stage == "read" else "waiting for outcomes"
            self.tasks[stage] = self.bar.add_task(label, total=total, counts=text)
        self.bar.update(self.tasks[stage], completed=done, total=total, counts=text)
