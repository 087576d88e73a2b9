from __future__ import annotations

import re
from decimal import Decimal

import pytest

from processor.domain.errors import InvalidValue
from processor.domain.money import MAX_AMOUNT, format_amount, parse_amount, parse_currency, parse_limit

ABOVE_MAX = str(MAX_AMOUNT + Decimal("0.01"))


class TestParseAmount:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("125.50", "125.50"),
            ("125.5", "125.50"),
            ("7", "7.00"),
            ("0.01", "0.01"),
            ("007.10", "7.10"),
            (7, "7.00"),
            (Decimal("3.1"), "3.10"),
            (str(MAX_AMOUNT), str(MAX_AMOUNT)),
        ],
    )
    def test_valid_value_is_quantized_to_cents(self, value: object, expected: str) -> None:
        amount = parse_amount(value)

        assert isinstance(amount, Decimal)
        assert amount == Decimal(expected)
        assert str(amount) == expected

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            (1.5, "not a binary float"),
            (True, "not bool"),
            (False, "not bool"),
            (None, "not NoneType"),
            (["1.00"], "not list"),
            ("abc", "'abc' is not a decimal string"),
            ("1e3", "'1e3' is not a decimal string"),
            (" 5", "' 5' is not a decimal string"),
            ("5 ", "'5 ' is not a decimal string"),
            ("1,000", "'1,000' is not a decimal string"),
            ("", "'' is not a decimal string"),
            (".5", "'.5' is not a decimal string"),
            ("NaN", "'NaN' is not a decimal string"),
            ("Infinity", "'Infinity' is not a decimal string"),
            (Decimal("NaN"), "must be a finite number"),
            (Decimal("Infinity"), "must be a finite number"),
            ("-5", "must be positive, got -5"),
            (-5, "must be positive, got -5"),
            ("0", "must be greater than zero"),
            ("0.00", "must be greater than zero"),
            (0, "must be greater than zero"),
            ("1.234", "1.234 has more than two decimal places"),
            ("0.001", "0.001 has more than two decimal places"),
            (ABOVE_MAX, f"above the maximum of {MAX_AMOUNT}"),
            (10**12, f"above the maximum of {MAX_AMOUNT}"),
        ],
    )
    def test_invalid_value_is_refused_with_the_reason(self, value: object, why: str) -> None:
        with pytest.raises(InvalidValue, match=re.escape(why)) as caught:
            parse_amount(value)

        assert caught.value.field == "amount"

    def test_error_names_the_field_it_was_given(self) -> None:
        with pytest.raises(InvalidValue, match=r"^fee: ") as caught:
            parse_amount("abc", field="fee")

        assert caught.value.field == "fee"


class TestParseLimit:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("0", "0.00"), ("0.00", "0.00"), (0, "0.00"), ("250", "250.00"), ("99.9", "99.90")],
    )
    def test_zero_and_positive_limits_are_accepted(self, value: object, expected: str) -> None:
        limit = parse_limit(value, "overdraft_limit")

        assert str(limit) == expected

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            ("-5", "must be positive"),
            ("1.234", "more than two decimal places"),
            (1.5, "not a binary float"),
            ("abc", "is not a decimal string"),
            (Decimal("NaN"), "must be a finite number"),
            (ABOVE_MAX, "above the maximum"),
        ],
    )
    def test_invalid_limit_is_refused_with_the_reason(self, value: object, why: str) -> None:
        with pytest.raises(InvalidValue, match=re.escape(why)) as caught:
            parse_limit(value, "overdraft_limit")

        assert caught.value.field == "overdraft_limit"

    @pytest.mark.parametrize("value", ["-0", "-0.00", Decimal("-0.00")])
    def test_negative_zero_is_refused(self, value: object) -> None:
        # Decimal keeps the sign of zero: accepted, it would be shown and audited as "-0.00".
        with pytest.raises(InvalidValue) as caught:
            parse_limit(value, "overdraft_limit")

        assert caught.value.field == "overdraft_limit"


class TestParseCurrency:
    @pytest.mark.parametrize("value", ["GBP", "EUR", "USD"])
    def test_three_capital_letters_are_accepted(self, value: str) -> None:
        assert parse_currency(value) == value

    @pytest.mark.parametrize("value", ["gbp", "Gbp", "GB", "GBPX", "G1P", " GBP", "GBP\n", "ÉUR", "", None, 826])
    def test_anything_else_is_refused(self, value: object) -> None:
        with pytest.raises(InvalidValue, match="three capital letters") as caught:
            parse_currency(value)

        assert caught.value.field == "currency"


class TestFormatAmount:
    @pytest.mark.parametrize(
        ("amount", "expected"),
        [
            (Decimal("5"), "5.00"),
            (Decimal("125.5"), "125.50"),
            (Decimal("125.50"), "125.50"),
            (Decimal("0"), "0.00"),
            (Decimal("-3.1"), "-3.10"),
            (MAX_AMOUNT, "999999999999.99"),
        ],
    )
    def test_formats_with_two_decimal_places(self, amount: Decimal, expected: str) -> None:
        assert format_amount(amount) == expected

    def test_round_trips_through_parse_amount(self) -> None:
        assert parse_amount(format_amount(Decimal("42.1"))) == Decimal("42.10")
