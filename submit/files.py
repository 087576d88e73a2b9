"""Payment files (docs/architecture.md, "Payment files"): CSV with a header, or JSON Lines, read one row at a time.

A reader never holds more than one row: a file of a million rows needs no more memory than one of a thousand.
A row it cannot read (bytes that are not UTF-8, the wrong number of columns, a line that is not a JSON object)
is reported as a RowError with its line number, and reading goes on with the next row.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from processor.domain.errors import ProcessorError

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


class UnreadableFile(ProcessorError):
    """The file as a whole cannot be read (missing, a directory, no usable header); the message says why."""


@dataclass(frozen=True)
class Row:
    line: int
    fields: dict[str, object]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str


RowOrError = Row | RowError


def read_rows(path: Path, file_format: FileFormat) -> Iterator[RowOrError]:
    """Each row of a payment file in order, or the reason it cannot be read; raises UnreadableFile."""
    try:
        stream = path.open("rb")
    except OSError as error:
        raise UnreadableFile(f"{path}: {error.strerror or error}") from None
    with stream:
        yield from (_read_csv(stream) if file_format is FileFormat.CSV else _read_jsonl(stream))


def _read_csv(stream: BinaryIO) -> Iterator[RowOrError]:
    # surrogateescape keeps a bad byte as a marker in its cell instead of stopping the whole file at it.
    lines = (raw.decode("utf-8", "surrogateescape") for raw in _without_bom(stream))
    reader = csv.reader(lines, strict=True)
    header = _read_header(reader)
    while True:
        # A row reads from the line after the previous one (a quoted field may carry it over several lines).
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield RowError(line, "row", f"is not valid CSV: {error}")
            continue
        if not cells or cells == [""]:
            continue
        if len(cells) != len(header):
            yield RowError(line, "row", f"has {len(cells)} columns; the header has {len(header)}")
            continue
        undecodable = next((name for name, cell in zip(header, cells, strict=True) if _BAD_BYTE.search(cell)), None)
        if undecodable is not None:
            yield RowError(line, undecodable, "has bytes that are not UTF-8")
            continue
        yield Row(line, dict(zip(header, cells, strict=True)))


def _without_bom(stream: BinaryIO) -> Iterator[bytes]:
    # Spreadsheet programs start UTF-8 files with a byte order mark; it is not part of the first column's name.
    for number, raw in enumerate(stream):
        yield raw.removeprefix(b"\xef\xbb\xbf") if number == 0 else raw


def _read_header(reader: Iterator[list[str]]) -> list[str]:
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            raise UnreadableFile(f"the file is empty: it needs a header line ({','.join(COLUMNS)})") from None
        except csv.Error as error:
            raise UnreadableFile(f"the header line is not valid CSV: {error}") from None
        if cells and cells != [""]:
            break
    header = [cell.strip().lower() for cell in cells]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in COLUMNS]
    if missing or unknown:
        problems = [f"lacks {', '.join(missing)}"] if missing else []
        problems += [f"has unknown column(s) {', '.join(repr(n[:40]) for n in unknown[:5])}"] if unknown else []
        raise UnreadableFile(f"the header {' and '.join(problems)}: the columns are {','.join(COLUMNS)}")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise UnreadableFile(f"the header names {', '.join(duplicated)} more than once")
    return header


_BAD_BYTE = re.compile("[\udc80-\udcff]")


def _read_jsonl(stream: BinaryIO) -> Iterator[RowOrError]:
    for line, raw in enumerate(_without_bom(stream), start=1):
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
