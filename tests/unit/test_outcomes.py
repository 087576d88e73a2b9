"""What is recorded: which fields make a later attempt of a reference a conflict."""

from __future__ import annotations

import pytest

from processor.domain.accounts import make_account_number
from processor.domain.outcomes import differing_fields
from processor.domain.requests import InvalidPayment
from processor.messages import read_fields
from tests.requests import row


class TestDifferingFields:
    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({}, []),
            ({"description": "something else"}, []),
            ({"amount": "125.5"}, []),
            ({"amount": "125.51"}, ["amount"]),
            ({"currency": "EUR"}, ["currency"]),
            ({"source": make_account_number(20000003)}, ["source"]),
            ({"destination": make_account_number(20000003)}, ["destination"]),
            ({"type": "withdrawal", "destination": None}, ["type", "destination"]),
            ({"type": "deposit", "source": None}, ["type", "source"]),
            ({"amount": "1.00", "currency": "EUR", "description": "x"}, ["amount", "currency"]),
        ],
    )
    def test_names_exactly_the_fields_that_differ(self, change: dict[str, object], expected: list[str]) -> None:
        recorded = read_fields(row()).payload()
        attempt = read_fields(row(**change)).payload()

        assert differing_fields(recorded, attempt) == expected

    def test_invalid_attempt_against_a_valid_record(self) -> None:
        recorded = read_fields(row()).payload()
        attempt = read_fields(row(amount="lots"))

        assert isinstance(attempt, InvalidPayment)
        assert differing_fields(recorded, attempt.payload()) == ["amount"]
