"""Cursors and date bounds: pure functions, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click
import pytest

from processor.domain.errors import InvalidValue
from processor.domain.pages import make_cursor, read_cursor
from processor.terminal import Moment, in_zone
from processor.times import format_time
from tests.conftest import setting

TOKYO = ZoneInfo("Asia/Tokyo")


class TestCursors:
    def test_a_cursor_gives_back_its_key(self) -> None:
        at = datetime(2026, 12, 2, 10, 30, 0, 123456, tzinfo=UTC)

        cursor = make_cursor("statement", at, 42)

        assert read_cursor("statement", cursor, datetime, int) == (at, 42)
        assert cursor.isascii()
        assert "=" not in cursor

    @pytest.mark.parametrize(
        "cursor",
        [
            make_cursor("accounts", 7),  # another listing's
            make_cursor("statement", "2026-12-02", 7),  # a time without an offset
            make_cursor("statement", datetime(2026, 12, 2, tzinfo=UTC), "7"),  # an id that is text
            make_cursor("statement", datetime(2026, 12, 2, tzinfo=UTC), True),  # a bool is no id
            "%%%",
            "",
        ],
    )
    def test_anything_but_a_cursor_of_the_listing_is_refused(self, cursor: str) -> None:
        with pytest.raises(InvalidValue, match="is not a cursor of statement"):
            read_cursor("statement", cursor, datetime, int)


class TestMoments:
    def test_a_date_is_the_whole_day_in_the_zone(self) -> None:
        day = Moment().convert("2026-12-01", None, None)

        assert in_zone(day, TOKYO) == datetime(2026, 12, 1, tzinfo=TOKYO)
        assert in_zone(day, TOKYO, end=True) == datetime(2026, 12, 2, tzinfo=TOKYO)

    def test_a_time_keeps_its_offset_and_one_without_is_in_the_zone(self) -> None:
        plus_one = timezone(timedelta(hours=1))
        with_offset = Moment().convert("2026-12-01T10:00:00+01:00", None, None)
        without = Moment().convert("2026-12-01T10:00:00", None, None)

        assert in_zone(with_offset, TOKYO) == datetime(2026, 12, 1, 10, tzinfo=plus_one)
        assert in_zone(without, TOKYO, end=True) == datetime(2026, 12, 1, 10, tzinfo=TOKYO)

    @pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "01/12/2026", ""])
    def test_anything_else_is_refused(self, value: str) -> None:
        with pytest.raises(click.BadParameter, match="is not a date"):
            Moment().convert(value, None, None)

    def test_times_print_as_rfc_3339_in_the_configured_zone(self) -> None:
        moment = datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=1)))

        assert format_time(moment) == "2026-12-01T09:00:00.000000+00:00"
        with setting("PROCESSOR_TIMEZONE", "Asia/Tokyo"):
            assert format_time(moment, "seconds") == "2026-12-01T18:00:00+09:00"
