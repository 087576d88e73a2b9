"""The message contract (docs/architecture.md): what a producer may send, and what a worker makes of it."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processor.domain.errors import InvalidRequest
from processor.domain.requests import CLIP_LENGTH, DESCRIPTION_MAX_LENGTH, InvalidPayment, PaymentRequest, PaymentType
from processor.messages import (
    MESSAGES,
    Deposit,
    PaymentMessage,
    Transfer,
    Withdrawal,
    build,
    field_errors,
    from_fields,
    read,
)
from tests.clis import mistype
from tests.requests import A, B

MISTYPED = mistype(A)  # one digit slipped: the check digit must catch it


def valid_kwargs(message: type[PaymentMessage], **overrides: object) -> dict[str, object]:
    """The kwargs of a valid message of this kind, with some replaced."""
    accounts: dict[str, object] = {"source": A, "destination": B} if message is Transfer else {"account": A}
    return {"reference": "ref-1", "amount": "125.50", "currency": "GBP", **accounts, **overrides}


def errors_of(message: type[PaymentMessage], **kwargs: object) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        build(message, **kwargs)
    return [(e.field, e.message) for e in caught.value.errors]


def invalid(task: str, kwargs: dict[str, object], args: tuple[object, ...] = ()) -> InvalidPayment:
    """What a worker makes of a message that it must record as rejected."""
    received = read(task, args, kwargs)
    assert isinstance(received, InvalidPayment), received
    return received


class TestBuild:
    def test_deposit_credits_its_account(self) -> None:
        message = build(Deposit, **valid_kwargs(Deposit, description="salary"))

        assert message.request() == PaymentRequest(
            "ref-1", PaymentType.DEPOSIT, Decimal("125.50"), "GBP", source=None, destination=A, description="salary"
        )

    def test_withdrawal_debits_its_account(self) -> None:
        message = build(Withdrawal, **valid_kwargs(Withdrawal))

        assert message.request() == PaymentRequest(
            "ref-1", PaymentType.WITHDRAWAL, Decimal("125.50"), "GBP", source=A, destination=None
        )

    def test_transfer_moves_money_from_source_to_destination(self) -> None:
        message = build(Transfer, **valid_kwargs(Transfer))

        assert message.request() == PaymentRequest(
            "ref-1", PaymentType.TRANSFER, Decimal("125.50"), "GBP", source=A, destination=B
        )

    def test_each_message_carries_its_task_name(self) -> None:
        assert {m.task: m.type for m in MESSAGES.values()} == {
            "payments.deposit": PaymentType.DEPOSIT,
            "payments.withdraw": PaymentType.WITHDRAWAL,
            "payments.transfer": PaymentType.TRANSFER,
        }

    def test_kwargs_are_json_strings_with_the_amount_as_a_decimal_string(self) -> None:
        kwargs = build(Transfer, **valid_kwargs(Transfer, description="rent")).kwargs()

        assert kwargs == {
            "reference": "ref-1",
            "source": A,
            "destination": B,
            "amount": "125.50",
            "currency": "GBP",
            "description": "rent",
        }

    def test_integer_amount_is_sent_with_two_decimal_places(self) -> None:
        assert build(Deposit, **valid_kwargs(Deposit, amount=10)).kwargs()["amount"] == "10.00"

    def test_absent_description_is_left_out_of_the_kwargs(self) -> None:
        assert "description" not in build(Deposit, **valid_kwargs(Deposit)).kwargs()

    @pytest.mark.parametrize("message", [Deposit, Withdrawal, Transfer])
    def test_kwargs_round_trip_through_json(self, message: type[PaymentMessage]) -> None:
        sent = build(message, **valid_kwargs(message, amount=7, description="x"))

        received = build(message, **json.loads(json.dumps(sent.kwargs())))

        assert received == sent
        assert received.request() == sent.request()

    @pytest.mark.parametrize(
        ("amount", "why"),
        [
            (1.5, "not a binary float"),
            ("1.234", "more than two decimal places"),
            ("-1", "must be positive"),
            ("0", "greater than zero"),
            ("NaN", "not a decimal string"),
            ("Infinity", "not a decimal string"),
            ("1e3", "not a decimal string"),
            (True, "not bool"),
        ],
    )
    def test_malformed_amount_is_refused(self, amount: object, why: str) -> None:
        [(field, message)] = errors_of(Deposit, **valid_kwargs(Deposit, amount=amount))

        assert field == "amount"
        assert why in message

    def test_mistyped_account_number_is_caught_by_the_check_digit(self) -> None:
        assert errors_of(Withdrawal, **valid_kwargs(Withdrawal, account=MISTYPED)) == [
            ("account", f"{MISTYPED} is not a valid account number (check digit mismatch: mistyped?)")
        ]

    @pytest.mark.parametrize("field", ["source", "destination"])
    def test_mistyped_transfer_account_names_its_side(self, field: str) -> None:
        [(name, _)] = errors_of(Transfer, **valid_kwargs(Transfer, **{field: MISTYPED}))

        assert name == field

    @pytest.mark.parametrize("currency", ["gbp", "GBPX"])
    def test_malformed_currency_is_refused(self, currency: str) -> None:
        [(field, message)] = errors_of(Deposit, **valid_kwargs(Deposit, currency=currency))

        assert field == "currency"
        assert "ISO 4217" in message

    @pytest.mark.parametrize("reference", ["ref 1", "r" * 65])
    def test_malformed_reference_is_refused_without_a_reference_on_the_error(self, reference: str) -> None:
        with pytest.raises(InvalidRequest) as caught:
            build(Deposit, **valid_kwargs(Deposit, reference=reference))

        assert [e.field for e in caught.value.errors] == ["reference"]
        assert caught.value.reference is None

    def test_description_with_a_lone_surrogate_is_refused(self) -> None:
        # What a JSON file's "\\udce9" decodes to: PostgreSQL could not store it as UTF-8.
        with pytest.raises(InvalidRequest, match="description: must be Unicode text"):
            build(Deposit, **valid_kwargs(Deposit, description="caf\udce9"))

    @pytest.mark.parametrize("text", ["a\x00b", "line\nbreak", "bell\x07"])
    def test_description_with_a_control_character_is_refused(self, text: str) -> None:
        # PostgreSQL cannot store NUL at all; a line break would split the description in every report.
        with pytest.raises(InvalidRequest, match="description: must not contain control characters"):
            build(Deposit, **valid_kwargs(Deposit, description=text))

    def test_description_of_the_maximum_length_is_accepted(self) -> None:
        description = "d" * DESCRIPTION_MAX_LENGTH

        assert build(Deposit, **valid_kwargs(Deposit, description=description)).kwargs()["description"] == description

    def test_description_over_the_maximum_length_is_refused(self) -> None:
        [(field, _)] = errors_of(Deposit, **valid_kwargs(Deposit, description="d" * (DESCRIPTION_MAX_LENGTH + 1)))

        assert field == "description"

    def test_every_broken_field_is_reported_at_once(self) -> None:
        kwargs = valid_kwargs(
            Transfer, source=MISTYPED, destination="abc", amount=1.5, currency="gbp", description="d" * 501
        )

        assert [field for field, _ in errors_of(Transfer, **kwargs)] == [
            "amount",
            "currency",
            "description",
            "source",
            "destination",
        ]

    def test_readable_reference_is_kept_on_the_error(self) -> None:
        with pytest.raises(InvalidRequest) as caught:
            build(Deposit, **valid_kwargs(Deposit, amount="0"))

        assert caught.value.reference == "ref-1"

    def test_missing_fields_are_required(self) -> None:
        assert errors_of(Transfer) == [
            ("reference", "is required"),
            ("amount", "is required"),
            ("currency", "is required"),
            ("source", "is required"),
            ("destination", "is required"),
        ]

    def test_unknown_fields_are_one_error_naming_five_and_counting_the_rest(self) -> None:
        extras = {f"extra{i}": i for i in range(8)}

        assert errors_of(Deposit, **valid_kwargs(Deposit, **extras)) == [
            (
                "message",
                "unexpected field(s) for payments.deposit: 'extra0', 'extra1', 'extra2', 'extra3', 'extra4' and 3 more",
            )
        ]

    def test_few_unknown_fields_are_all_named(self) -> None:
        assert errors_of(Withdrawal, **valid_kwargs(Withdrawal, destination=B)) == [
            ("message", "unexpected field(s) for payments.withdraw: 'destination'")
        ]

    def test_deposit_sent_with_the_domain_field_name_is_refused(self) -> None:
        kwargs = valid_kwargs(Deposit, destination=A)
        del kwargs["account"]

        assert [field for field, _ in errors_of(Deposit, **kwargs)] == ["account", "message"]


class TestQuotedValues:
    """What a sender put in a field is quoted short in an error: errors are stored, returned and printed."""

    @pytest.mark.parametrize("field", ["currency", "amount", "reference", "account"])
    def test_a_megabyte_value_is_quoted_as_an_excerpt(self, field: str) -> None:
        kwargs = valid_kwargs(Deposit, **{field: "X" * 5_000_000})
        if field == "reference":
            with pytest.raises(InvalidRequest) as caught:
                read(Deposit.task, (), kwargs)
            errors = [str(e) for e in caught.value.errors]
        else:
            errors = [str(e) for e in invalid(Deposit.task, kwargs).errors]

        [error] = errors
        assert error.startswith(f"{field}: 'XXXX")
        assert "(5000002 characters)" in error
        assert len(error) < 300


class TestFieldErrors:
    def test_long_unknown_field_name_is_cut_short(self) -> None:
        with pytest.raises(ValidationError) as caught:
            Deposit.model_validate(valid_kwargs(Deposit, **{"x" * 10_000: 1}))

        [error] = field_errors(caught.value, Deposit)

        assert error.field == "message"
        assert f"'{'x' * 40}'" in error.message
        assert len(error.message) < 100


class TestRead:
    def test_valid_message_is_a_request(self) -> None:
        assert (
            read("payments.withdraw", (), valid_kwargs(Withdrawal))
            == build(Withdrawal, **valid_kwargs(Withdrawal)).request()
        )

    def test_positional_arguments_make_a_valid_message_invalid(self) -> None:
        received = invalid("payments.deposit", valid_kwargs(Deposit), args=("ref-1", A))

        assert [e.field for e in received.errors] == ["args"]
        assert "keyword arguments only" in received.errors[0].message

    def test_positional_arguments_are_reported_with_the_field_errors(self) -> None:
        received = invalid("payments.deposit", valid_kwargs(Deposit, amount="1.234", currency="gbp"), args=(1, 2))

        assert [e.field for e in received.errors] == ["args", "amount", "currency"]
        assert received.errors[0].message.startswith("2 positional argument(s)")

    @pytest.mark.parametrize("reference", [None, "ref 1", 42, "r" * 65])
    def test_unreadable_reference_raises_without_a_reference(self, reference: object) -> None:
        kwargs = valid_kwargs(Deposit, reference=reference, amount="0")

        with pytest.raises(InvalidRequest) as caught:
            read("payments.deposit", (), kwargs)

        assert caught.value.reference is None
        assert {e.field for e in caught.value.errors} == {"reference", "amount"}

    def test_invalid_deposit_is_recorded_under_the_domain_names(self) -> None:
        received = invalid("payments.deposit", valid_kwargs(Deposit, account=MISTYPED))

        assert received.reference == "ref-1"
        assert received.payload() == {"type": "deposit", "destination": MISTYPED, "amount": "125.50", "currency": "GBP"}

    def test_invalid_withdrawal_is_recorded_under_the_domain_names(self) -> None:
        received = invalid("payments.withdraw", valid_kwargs(Withdrawal, amount=1.5))

        assert received.payload() == {"type": "withdrawal", "source": A, "amount": 1.5, "currency": "GBP"}

    def test_invalid_transfer_keeps_both_accounts(self) -> None:
        received = invalid("payments.transfer", valid_kwargs(Transfer, currency="gbp"))

        assert received.payload() == {
            "type": "transfer",
            "source": A,
            "destination": B,
            "amount": "125.50",
            "currency": "gbp",
        }

    def test_huge_description_is_recorded_as_a_short_excerpt(self) -> None:
        received = invalid("payments.deposit", valid_kwargs(Deposit, description="d" * 1_000_000))

        description = received.payload()["description"]

        assert isinstance(description, str)
        assert description.startswith("d" * CLIP_LENGTH)
        assert description.endswith("… (1000000 characters)")
        assert len(description) < CLIP_LENGTH + 50

    def test_same_bad_message_twice_has_the_same_fingerprint(self) -> None:
        first = invalid("payments.transfer", valid_kwargs(Transfer, amount="1.234", description="d" * 1_000_000))
        again = invalid("payments.transfer", valid_kwargs(Transfer, amount="1.234", description="d" * 1_000_000))

        assert first.fingerprint() == again.fingerprint()

    def test_bad_message_with_another_amount_has_another_fingerprint(self) -> None:
        first = invalid("payments.transfer", valid_kwargs(Transfer, amount="1.234"))
        other = invalid("payments.transfer", valid_kwargs(Transfer, amount="1.235"))

        assert first.fingerprint() != other.fingerprint()


def json_values() -> st.SearchStrategy[object]:
    """Any JSON scalar: whatever a non-Python producer might put in a field."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**15), max_value=10**15),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    )


def mostly(valid: st.SearchStrategy[object], malformed: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Valid three times in four, so that whole messages are often valid too."""
    return st.sampled_from([valid, valid, valid, malformed | json_values()]).flatmap(lambda chosen: chosen)


def texts_of_length(shortest: int, longest: int) -> st.SearchStrategy[object]:
    """Long texts near a limit, built cheaply: hypothesis rarely draws a text this long by itself."""
    return st.builds(lambda char, length: char * length, st.characters(), st.integers(shortest, longest))


amounts = mostly(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2).map(str)
    | st.integers(min_value=1, max_value=10**9),
    st.sampled_from(["1.234", "-0", "0.00", "NaN", "1e3", " 1", "\u0661", "1000000000000.00"]),
)
accounts = mostly(st.sampled_from([A, B]), st.sampled_from([MISTYPED, "", "1234567", "abc"]))
raw_kwargs = st.fixed_dictionaries(
    {
        "reference": mostly(
            st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True), st.sampled_from(["r" * 65, "a b", ""])
        ),
        "amount": amounts,
        "currency": mostly(st.sampled_from(["GBP", "EUR"]), st.sampled_from(["gbp", "GBPX", "GB"])),
        "account": accounts,
        "source": accounts,
        "destination": accounts,
        # None is what an absent description reads as, to the model and the domain alike.
        "description": mostly(
            st.none() | st.text(max_size=20) | texts_of_length(DESCRIPTION_MAX_LENGTH - 2, DESCRIPTION_MAX_LENGTH),
            texts_of_length(DESCRIPTION_MAX_LENGTH + 1, DESCRIPTION_MAX_LENGTH + 2),
        ),
    },
)


class TestTaskKwargsAgreeWithFileRows:
    """A payment is valid as a task's kwargs exactly when it is valid as a file row or a batch item."""

    @settings(max_examples=300, deadline=None)
    @given(message=st.sampled_from([Deposit, Withdrawal, Transfer]), raw=raw_kwargs)
    def test_kwargs_are_accepted_exactly_when_the_same_row_is(
        self, message: type[PaymentMessage], raw: dict[str, object]
    ) -> None:
        names = {"reference", "amount", "currency", "description", *message.model_fields}
        kwargs = {k: v for k, v in raw.items() if k in names}

        try:
            by_model: PaymentRequest | None = build(message, **kwargs).request()
        except InvalidRequest:
            by_model = None
        try:
            by_domain: PaymentRequest | None = from_fields(message.domain_fields(kwargs)).request()
        except InvalidRequest:
            by_domain = None

        assert by_model == by_domain


class TestJsonSchema:
    @pytest.mark.parametrize("message", [Deposit, Withdrawal, Transfer])
    def test_schema_requires_the_contract_fields_and_forbids_others(self, message: type[PaymentMessage]) -> None:
        schema = message.model_json_schema()

        assert set(schema["required"]) == set(valid_kwargs(message))
        assert set(schema["properties"]) == {*valid_kwargs(message), "description"}
        assert schema["additionalProperties"] is False

    def test_schema_describes_the_amount_as_a_decimal_string_or_an_integer(self) -> None:
        amount = Deposit.model_json_schema()["properties"]["amount"]

        assert {branch["type"] for branch in amount["anyOf"]} == {"string", "integer"}
        assert re.fullmatch(string_pattern(amount), "125.50")
        assert not re.fullmatch(string_pattern(amount), "1.234")

    @pytest.mark.parametrize("message", [Deposit, Withdrawal, Transfer])
    def test_schema_patterns_match_what_a_valid_message_sends(self, message: type[PaymentMessage]) -> None:
        properties = message.model_json_schema()["properties"]

        sent = build(message, **valid_kwargs(message, amount=10)).kwargs()

        for name, value in sent.items():
            assert re.fullmatch(string_pattern(properties[name]), value), (name, value)


def string_pattern(schema: dict[str, Any]) -> str:
    """The pattern of a property's string form, whether or not it also takes other types."""
    strings = [branch for branch in schema.get("anyOf", [schema]) if branch["type"] == "string"]
    return str(strings[0]["pattern"])
