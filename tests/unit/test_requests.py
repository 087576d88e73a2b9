"""What arrives: a request in the domain's shape (a file row, a batch item), validated by the message contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processor.domain.accounts import make_account_number
from processor.domain.errors import InvalidRequest
from processor.domain.requests import InvalidPayment, PaymentRequest, PaymentType
from processor.messages import from_fields, read_fields
from tests.clis import mistype
from tests.requests import A, B, row


def errors_of(message: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        from_fields(message)
    return [(e.field, e.message) for e in caught.value.errors]


class TestFromFields:
    def test_valid_deposit(self) -> None:
        message = {"reference": "dep-1", "type": "deposit", "destination": A, "amount": "10", "currency": "GBP"}

        assert read_fields(message) == PaymentRequest(
            "dep-1", PaymentType.DEPOSIT, Decimal("10.00"), "GBP", source=None, destination=A
        )

    def test_valid_withdrawal_with_empty_fields_from_a_csv_row(self) -> None:
        message = row(type="withdrawal", destination="", description="")

        assert read_fields(message) == PaymentRequest(
            "ref-1", PaymentType.WITHDRAWAL, Decimal("125.50"), "GBP", source=A, destination=None, description=None
        )

    def test_valid_transfer(self) -> None:
        assert read_fields(row(amount=125)) == PaymentRequest(
            "ref-1", PaymentType.TRANSFER, Decimal("125.00"), "GBP", source=A, destination=B, description="rent"
        )

    @pytest.mark.parametrize("reference", ["a" * 64, "A", "Az09._:-", "2024-11-24:batch.7_row-3"])
    def test_reference_of_allowed_characters_is_accepted(self, reference: str) -> None:
        assert read_fields(row(reference=reference)).reference == reference

    def test_unknown_type(self) -> None:
        assert errors_of(row(type="refund")) == [
            ("type", "'refund' is not a payment type (one of: deposit, withdrawal, transfer)")
        ]

    def test_missing_destination_for_deposit(self) -> None:
        assert errors_of(row(type="deposit", source=None, destination=None)) == [
            ("destination", "is required for a deposit")
        ]

    def test_source_given_for_deposit(self) -> None:
        assert errors_of(row(type="deposit")) == [("source", "must be empty for a deposit")]

    def test_missing_source_for_withdrawal(self) -> None:
        message = row(type="withdrawal", destination=None)
        del message["source"]

        assert errors_of(message) == [("source", "is required for a withdrawal")]

    def test_destination_given_for_withdrawal(self) -> None:
        assert errors_of(row(type="withdrawal")) == [("destination", "must be empty for a withdrawal")]

    @pytest.mark.parametrize("field", ["source", "destination"])
    def test_missing_account_for_transfer(self, field: str) -> None:
        assert errors_of(row(**{field: ""})) == [(field, "is required for a transfer")]

    @pytest.mark.parametrize("field", ["source", "destination"])
    def test_mistyped_account_number(self, field: str) -> None:
        mistyped = mistype(A)

        [(name, message)] = errors_of(row(**{field: mistyped}))

        assert name == field
        assert "check digit mismatch" in message

    def test_account_number_that_is_not_digits(self) -> None:
        [(name, message)] = errors_of(row(destination="GB12ABCD"))

        assert name == "destination"
        assert "8 to 16 digits" in message

    @pytest.mark.parametrize(
        ("amount", "why"),
        [
            (1.5, "binary float"),
            ("0", "greater than zero"),
            ("-5", "must be positive"),
            ("1.234", "more than two decimal places"),
            ("abc", "not a decimal string"),
            ([], "list"),
        ],
    )
    def test_bad_amount(self, amount: object, why: str) -> None:
        [(name, message)] = errors_of(row(amount=amount))

        assert name == "amount"
        assert why in message

    @pytest.mark.parametrize("currency", ["gbp", "GB", "POUNDS", 826])
    def test_bad_currency(self, currency: object) -> None:
        [(name, message)] = errors_of(row(currency=currency))

        assert name == "currency"
        assert "three capital letters" in message

    @pytest.mark.parametrize("reference", ["a" * 65, "has space", "ref/1", "réf", 123])
    def test_bad_reference(self, reference: object) -> None:
        [(name, message)] = errors_of(row(reference=reference))

        assert name == "reference"
        assert "1 to 64 characters" in message

    @pytest.mark.parametrize("field", ["reference", "amount", "currency"])
    @pytest.mark.parametrize("empty", ["", None])
    def test_empty_field_is_required(self, field: str, empty: object) -> None:
        assert errors_of(row(**{field: empty})) == [(field, "is required")]

    def test_description_over_500_characters(self) -> None:
        assert errors_of(row(description="x" * 501)) == [("description", "must be text of at most 500 characters")]

    def test_several_errors_are_reported_at_once(self) -> None:
        message = row(reference="has space", source=A[:-1], destination=None, amount="-1", currency="pounds")

        with pytest.raises(InvalidRequest) as caught:
            read_fields(message)

        assert sorted(e.field for e in caught.value.errors) == [
            "amount",
            "currency",
            "destination",
            "reference",
            "source",
        ]
        assert all(f"{e.field}: {e.message}" in str(caught.value) for e in caught.value.errors)

    def test_empty_message_reports_every_required_field(self) -> None:
        assert sorted(name for name, _ in errors_of({})) == ["amount", "currency", "reference", "type"]

    def test_invalid_request_carries_a_valid_reference(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            from_fields(row(reference="ref-9", amount="0"))

        assert caught.value.reference == "ref-9"

    def test_invalid_request_has_no_reference_when_it_cannot_be_read(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            from_fields(row(reference="a" * 65, amount="0"))

        assert caught.value.reference is None


class TestReadFields:
    def test_valid_message_is_a_request(self) -> None:
        assert read_fields(row()) == from_fields(row()).request()

    def test_readable_reference_gives_an_invalid_payment(self) -> None:
        message = row(reference="ref-7", amount="1.234")

        invalid = read_fields(message)

        assert isinstance(invalid, InvalidPayment)
        assert invalid.reference == "ref-7"
        assert invalid.fields == message
        assert [e.field for e in invalid.errors] == ["amount"]

    def test_unreadable_reference_raises(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            read_fields(row(reference="has space", amount="1.234"))

        assert caught.value.reference is None
        assert sorted(e.field for e in caught.value.errors) == ["amount", "reference"]

    def test_invalid_payment_payload_turns_non_json_values_into_text(self) -> None:
        invalid = read_fields(row(amount=float("nan"), currency=Decimal("1")))

        assert isinstance(invalid, InvalidPayment)
        assert invalid.payload()["amount"] == "nan"
        assert invalid.payload()["currency"] == "1"
        assert invalid.payload()["source"] == A

    def test_invalid_payment_payload_keeps_a_float_a_float(self) -> None:
        # Stored as text, 1.5 would read back as a valid "1.5" and hide why the request was refused.
        invalid = read_fields(row(amount=1.5))

        assert isinstance(invalid, InvalidPayment)
        assert invalid.payload()["amount"] == 1.5


class TestFingerprint:
    def test_same_identity_gives_the_same_fingerprint(self) -> None:
        assert read_fields(row()).fingerprint() == read_fields(row()).fingerprint()

    def test_description_does_not_change_it(self) -> None:
        first = read_fields(row(description="rent"))
        second = read_fields(row(description="rent for March"))

        assert first.fingerprint() == second.fingerprint()
        assert first.payload() != second.payload()

    @pytest.mark.parametrize(("first", "second"), [("10.5", "10.50"), ("10", "10.00"), (10, "10.00")])
    def test_equal_amounts_written_differently_give_the_same_fingerprint(self, first: object, second: object) -> None:
        assert read_fields(row(amount=first)).fingerprint() == read_fields(row(amount=second)).fingerprint()

    @pytest.mark.parametrize(
        "change",
        [
            {"type": "withdrawal", "destination": None},
            {"source": make_account_number(20000003)},
            {"destination": make_account_number(20000003)},
            {"amount": "125.51"},
            {"currency": "EUR"},
        ],
    )
    def test_any_identity_field_changes_it(self, change: dict[str, object]) -> None:
        assert read_fields(row(**change)).fingerprint() != read_fields(row()).fingerprint()

    def test_same_invalid_message_gives_the_same_fingerprint(self) -> None:
        first = read_fields(row(amount="abc", description="one"))
        second = read_fields(row(amount="abc", description="two"))
        third = read_fields(row(amount="abd"))

        assert first.fingerprint() == second.fingerprint()
        assert first.fingerprint() != third.fingerprint()
