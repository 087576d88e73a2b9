"""Payment files (ARCHITECTURE.md section 9): CSV with a header, or JSON Lines, read one row at a time.

A reader never holds more than one row: a file of a million rows needs no more memory than one of a thousand.
A row it cannot read (bytes that are not UTF-8, the wrong number of columns, a line that is not a JSON object)
is reported as a RowError with its line number, and reading goes on with the next row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

COLUMNS = ("reference", "type", "source", "destination", "amount", "currency", "description")
REQUIRED_COLUMNS = COLUMNS[:-1]  # a file may leave out the description column


class FileFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def of(cls, path: Path) -> FileFormat:
        """The format a file's extension names; raises UnreadableFile when it names none."""
        suffix = path.suffix.lower().lstrip(".")
        if suffix == "csv":
            return cls.CSV
        if suffix in ("jsonl", "ndjson"):
            return cls.JSONL
        raise UnreadableFile(f"{path}: cannot tell the format from the extension {path.suffix!r}; use --format")


class UnreadableFile(Exception):
    """The file as a whole cannot be read (missing, a directory, no usable header)."""


@dataclass(frozen=True)
class Row:
    line: int
    fields: dict[str, object]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str


Read = Row | RowError


def read_rows(path: Path, file_format: FileFormat) -> Iterator[Read]:
    """Each row of a payment file in order, or the reason it cannot be read; raises UnreadableFile."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise UnreadableFile(f"{path}: {error.strerror or error}") from None
    with stream:
        yield from (_read_csv(stream) if file_format is FileFormat.CSV else _read_jsonl(stream))


def _read_csv(stream: BinaryIO) -> Iterator[Read]:
    # surrogateescape keeps a bad byte as a marker in its cell instead of stopping the whole file at it.
    lines = (raw.decode("utf-8", "surrogateescape") for raw in stream)
    reader = csv.reader(lines, strict=True)
    header = _header(reader)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RowError(reader.line_num, "row", f"is not valid CSV: {error}")
            continue
        if not cells or cells == [""]:
            continue
        if len(cells) != len(header):
            yield RowError(reader.line_num, "row", f"has {len(cells)} columns; the header has {len(header)}")
            continue
        undecodable = next((name for name, cell in zip(header, cells, strict=True) if _has_bad_bytes(cell)), None)
        if undecodable is not None:
            yield RowError(reader.line_num, undecodable, "has bytes that are not UTF-8")
            continue
        yield Row(reader.line_num, {name: cell for name, cell in zip(header, cells, strict=True) if name in COLUMNS})


def _header(reader: Iterable[list[str]]) -> list[str]:
    for cells in reader:
        if not cells or cells == [""]:
            continue
        header = [cell.strip().lower().removeprefix("\ufeff") for cell in cells]
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise UnreadableFile(
                f"the header lacks {', '.join(missing)}: the first line must name the columns ({','.join(COLUMNS)})"
            )
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise UnreadableFile(f"the header names {', '.join(duplicated)} more than once")
        return header
    raise UnreadableFile(f"the file is empty: it needs a header line ({','.join(COLUMNS)})")


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _read_jsonl(stream: BinaryIO) -> Iterator[Read]:
    for line, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield RowError(line, "row", "has bytes that are not UTF-8")
            continue
        except json.JSONDecodeError as error:
            yield RowError(line, "row", f"is not JSON: {error.msg} at column {error.colno}")
            continue
        if not isinstance(data, dict):
            yield RowError(line, "row", f"is a JSON {type(data).__name__}, not an object with the payment's keys")
            continue
        unknown = sorted(str(key) for key in data if key not in COLUMNS)
        if unknown:
            shown = ", ".join(repr(key[:40]) for key in unknown[:5])
            yield RowError(line, "row", f"has unknown key(s) {shown}; the keys are {', '.join(COLUMNS)}")
            continue
        yield Row(line, data)
