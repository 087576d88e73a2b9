"""The payment file readers (docs/architecture.md): each row or the reason it cannot be read, at its line."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from submit.files import FileFormat, Row, RowError, RowOrError, UnreadableFile, read_rows

HEADER = b"reference,type,source,destination,amount,currency,description\n"
DEPOSIT = b"ref-1,deposit,,100000011,12.50,GBP,salary\n"
TRANSFER = b"ref-2,transfer,100000011,100000022,250.00,GBP,rent\n"
DEPOSIT_FIELDS: dict[str, object] = {
    "reference": "ref-1",
    "type": "deposit",
    "source": "",
    "destination": "100000011",
    "amount": "12.50",
    "currency": "GBP",
    "description": "salary",
}
TRANSFER_FIELDS: dict[str, object] = {
    "reference": "ref-2",
    "type": "transfer",
    "source": "100000011",
    "destination": "100000022",
    "amount": "250.00",
    "currency": "GBP",
    "description": "rent",
}
DEPOSIT_JSON = b'{"reference": "ref-1", "type": "deposit", "destination": "100000011", "amount": "12.50"}\n'


def read(tmp_path: Path, content: bytes, file_format: FileFormat = FileFormat.CSV) -> list[RowOrError]:
    path = tmp_path / f"payments.{file_format.value}"
    path.write_bytes(content)
    return list(read_rows(path, file_format))


def lines(items: list[RowOrError]) -> list[int]:
    return [item.line for item in items]


class TestCsvRows:
    def test_each_row_is_read_with_its_line_number(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + DEPOSIT + TRANSFER)

        assert items == [Row(2, DEPOSIT_FIELDS), Row(3, TRANSFER_FIELDS)]

    def test_columns_may_come_in_any_order(self, tmp_path: Path) -> None:
        header = b"amount,currency,destination,source,type,description,reference\n"
        content = header + b"12.50,GBP,100000011,,deposit,salary,ref-1\n"

        assert read(tmp_path, content) == [Row(2, DEPOSIT_FIELDS)]

    def test_header_names_are_matched_whatever_their_case_and_surrounding_spaces(self, tmp_path: Path) -> None:
        content = b"Reference, TYPE ,Source,Destination,Amount,Currency,Description\n" + DEPOSIT

        assert read(tmp_path, content) == [Row(2, DEPOSIT_FIELDS)]

    def test_byte_order_mark_before_the_header_is_ignored(self, tmp_path: Path) -> None:
        assert read(tmp_path, b"\xef\xbb\xbf" + HEADER + DEPOSIT) == [Row(2, DEPOSIT_FIELDS)]

    def test_byte_order_mark_before_a_quoted_header_is_ignored(self, tmp_path: Path) -> None:
        header = b'"reference","type","source","destination","amount","currency","description"\n'

        assert read(tmp_path, b"\xef\xbb\xbf" + header + DEPOSIT) == [Row(2, DEPOSIT_FIELDS)]

    def test_description_column_may_be_left_out(self, tmp_path: Path) -> None:
        content = b"reference,type,source,destination,amount,currency\nref-1,deposit,,100000011,12.50,GBP\n"

        (row,) = read(tmp_path, content)

        assert row == Row(2, {k: v for k, v in DEPOSIT_FIELDS.items() if k != "description"})

    def test_blank_lines_are_skipped_and_later_rows_keep_their_line_numbers(self, tmp_path: Path) -> None:
        items = read(tmp_path, b"\n" + HEADER + b"\n\n" + DEPOSIT + b"\n" + TRANSFER + b"\n")

        assert lines(items) == [5, 7]

    def test_windows_line_endings_are_read_like_unix_ones(self, tmp_path: Path) -> None:
        items = read(tmp_path, (HEADER + DEPOSIT + b"\n" + TRANSFER).replace(b"\n", b"\r\n"))

        assert items[0] == Row(2, DEPOSIT_FIELDS)
        assert lines(items) == [2, 4]

    def test_quoted_comma_stays_in_its_field(self, tmp_path: Path) -> None:
        (row,) = read(tmp_path, HEADER + b'ref-1,deposit,,100000011,12.50,GBP,"dinner, split"\n')

        assert isinstance(row, Row)
        assert row.fields["description"] == "dinner, split"

    def test_quoted_newline_stays_in_its_field_and_later_rows_keep_their_line_numbers(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b'ref-1,deposit,,100000011,12.50,GBP,"two\nlines"\n' + TRANSFER)

        assert isinstance(items[0], Row)
        assert items[0].fields["description"] == "two\nlines"
        assert items[1].line == 4

    def test_row_over_several_lines_is_numbered_by_its_first_line(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b'ref-1,deposit,,100000011,12.50,GBP,"two\nlines"\n')

        assert lines(items) == [2]

    def test_row_with_too_few_columns_is_an_error_and_reading_goes_on(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b"ref-1,deposit,,100000011,12.50\n" + TRANSFER)

        assert items[0] == RowError(2, "row", "has 5 columns; the header has 7")
        assert isinstance(items[1], Row)
        assert items[1].line == 3

    def test_row_with_too_many_columns_is_an_error(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b"ref-1,deposit,,100000011,12.50,GBP,salary,extra\n")

        assert items == [RowError(2, "row", "has 8 columns; the header has 7")]

    def test_undecodable_bytes_are_reported_with_their_field(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b"ref-1,deposit,,100000011,12.50,GBP,caf\xe9\n" + TRANSFER)

        assert items[0] == RowError(2, "description", "has bytes that are not UTF-8")
        assert lines(items) == [2, 3]

    def test_invalid_csv_is_an_error_and_reading_goes_on(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b'ref-1,deposit,,100000011,"12.50"x,GBP,salary\n' + TRANSFER)

        assert isinstance(items[0], RowError)
        assert (items[0].line, items[0].field) == (2, "row")
        assert items[0].message.startswith("is not valid CSV: ")
        assert isinstance(items[1], Row)
        assert items[1].line == 3

    def test_quote_left_open_is_an_error_at_the_line_where_the_row_starts(self, tmp_path: Path) -> None:
        items = read(tmp_path, HEADER + b'ref-1,deposit,,100000011,12.50,GBP,"salary\n' + TRANSFER)

        assert items == [RowError(2, "row", "is not valid CSV: unexpected end of data")]


class TestCsvHeader:
    def test_header_with_an_unknown_column_makes_the_file_unreadable(self, tmp_path: Path) -> None:
        # A misspelt optional column would otherwise be dropped without a word.
        with pytest.raises(UnreadableFile, match="has unknown column\\(s\\) 'descripton'"):
            read(tmp_path, b"reference,type,source,destination,amount,currency,descripton\n")

    def test_header_without_some_columns_makes_the_file_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="the header lacks source, amount"):
            read(tmp_path, b"reference,type,destination,currency\n")

    def test_header_naming_a_column_twice_makes_the_file_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="the header names amount more than once"):
            read(tmp_path, b"reference,type,source,destination,amount,currency,Amount\n")

    def test_rows_without_a_header_make_the_file_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="the header lacks"):
            read(tmp_path, DEPOSIT + TRANSFER)

    def test_invalid_csv_in_the_header_makes_the_file_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile):
            read(tmp_path, b'"reference"x,type,source,destination,amount,currency\n' + DEPOSIT)

    def test_empty_file_is_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="the file is empty"):
            read(tmp_path, b"")

    def test_file_of_blank_lines_is_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="the file is empty"):
            read(tmp_path, b"\n\n\n")

    def test_header_alone_is_a_file_of_no_rows(self, tmp_path: Path) -> None:
        assert read(tmp_path, HEADER) == []

    def test_missing_file_is_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="No such file"):
            list(read_rows(tmp_path / "missing.csv", FileFormat.CSV))

    def test_directory_is_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(UnreadableFile, match="Is a directory"):
            list(read_rows(tmp_path, FileFormat.CSV))


class TestJsonLines:
    def test_each_object_is_read_with_its_line_number(self, tmp_path: Path) -> None:
        items = read(tmp_path, DEPOSIT_JSON + DEPOSIT_JSON.replace(b"ref-1", b"ref-2"), FileFormat.JSONL)

        fields: dict[str, object] = {
            "reference": "ref-1",
            "type": "deposit",
            "destination": "100000011",
            "amount": "12.50",
        }
        assert items == [Row(1, fields), Row(2, {**fields, "reference": "ref-2"})]

    def test_values_keep_their_json_types_for_validation_to_judge(self, tmp_path: Path) -> None:
        (row,) = read(tmp_path, b'{"reference": "ref-1", "amount": 12.5, "source": null}\n', FileFormat.JSONL)

        assert row == Row(1, {"reference": "ref-1", "amount": 12.5, "source": None})

    def test_blank_lines_are_skipped_and_later_rows_keep_their_line_numbers(self, tmp_path: Path) -> None:
        items = read(tmp_path, b"\n" + DEPOSIT_JSON + b"  \n\n" + DEPOSIT_JSON, FileFormat.JSONL)

        assert lines(items) == [2, 5]

    def test_line_that_is_not_json_is_an_error_and_reading_goes_on(self, tmp_path: Path) -> None:
        items = read(tmp_path, b'{"reference": "ref-1",\n' + DEPOSIT_JSON, FileFormat.JSONL)

        assert isinstance(items[0], RowError)
        assert (items[0].line, items[0].field) == (1, "row")
        assert items[0].message.startswith("is not JSON: ")
        assert isinstance(items[1], Row)
        assert items[1].line == 2

    def test_list_is_an_error(self, tmp_path: Path) -> None:
        items = read(tmp_path, b'["ref-1", "deposit"]\n', FileFormat.JSONL)

        assert items == [RowError(1, "row", "is a JSON list, not an object with the payment's keys")]

    def test_undecodable_bytes_are_an_error_and_reading_goes_on(self, tmp_path: Path) -> None:
        items = read(tmp_path, b'{"description": "caf\xe9"}\n' + DEPOSIT_JSON, FileFormat.JSONL)

        assert items[0] == RowError(1, "row", "has bytes that are not UTF-8")
        assert lines(items) == [1, 2]

    def test_unknown_keys_are_an_error_naming_them(self, tmp_path: Path) -> None:
        items = read(tmp_path, b'{"reference": "ref-1", "amonut": "1.00", "note": "x"}\n', FileFormat.JSONL)

        assert len(items) == 1
        assert isinstance(items[0], RowError)
        assert (items[0].line, items[0].field) == (1, "row")
        assert items[0].message.startswith("has unknown key(s) 'amonut', 'note'; the keys are reference,")


class TestFileFormat:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("payments.csv", FileFormat.CSV),
            ("PAYMENTS.CSV", FileFormat.CSV),
            ("payments.jsonl", FileFormat.JSONL),
            ("payments.ndjson", FileFormat.JSONL),
            ("payments.NDJSON", FileFormat.JSONL),
        ],
    )
    def test_extension_names_the_format(self, name: str, expected: FileFormat) -> None:
        assert FileFormat.of(Path(name)) is expected

    @pytest.mark.parametrize("name", ["payments.txt", "payments", "payments.csv.gz"])
    def test_unknown_extension_is_unreadable_and_suggests_format(self, name: str) -> None:
        with pytest.raises(UnreadableFile, match="use --format"):
            FileFormat.of(Path(name))


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER.decode())
        for n in range(rows):
            out.write(f"bulk-{n},transfer,100000011,100000022,{n % 997 + 1}.50,GBP,invoice {n}\n")


def peak_memory_while_reading(path: Path, file_format: FileFormat) -> tuple[int, int]:
    """The rows read, and the most memory that reading them held at once, in bytes."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        count = sum(1 for _ in read_rows(path, file_format))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak - before


class TestStreaming:
    def test_twenty_times_the_rows_need_no_more_memory(self, tmp_path: Path) -> None:
        small, big = tmp_path / "small.csv", tmp_path / "big.csv"
        write_csv(small, 10_000)
        write_csv(big, 200_000)

        small_rows, small_peak = peak_memory_while_reading(small, FileFormat.CSV)
        big_rows, big_peak = peak_memory_while_reading(big, FileFormat.CSV)

        print(f"peak while reading: {small_peak / 1024:.1f} KiB for {small_rows} rows,", end=" ")
        print(f"{big_peak / 1024:.1f} KiB for {big_rows} rows ({big.stat().st_size / 2**20:.1f} MiB)")
        assert (small_rows, big_rows) == (10_000, 200_000)
        assert big_peak < 1.5 * small_peak + 64 * 1024
