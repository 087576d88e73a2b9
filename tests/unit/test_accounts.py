from __future__ import annotations

import re
from decimal import Decimal

import pytest

from processor.domain.accounts import (
    ALLOWED_STATUS_CHANGES,
    AccountStatus,
    AccountType,
    make_account_number,
    parse_account_number,
    parse_account_type,
    parse_customer_name,
    parse_email,
    parse_status,
)
from processor.domain.errors import InvalidStatusChange, InvalidValue
from tests.clis import mistype
from tests.unit.builders import account

S = AccountStatus


SEQUENCE_VALUES = [10000000, 12345678, 90817263, 55555555, 123456789012345]
# The status changes the README promises, written out rather than derived from the code under test.
PROMISED_CHANGES = {
    "active": "dormant outgoing_blocked incoming_blocked frozen closed",
    "dormant": "active frozen closed",
    "outgoing_blocked": "active frozen closed",
    "incoming_blocked": "active frozen closed",
    "frozen": "active dormant outgoing_blocked incoming_blocked closed",
    "closed": "",
}
ALLOWED_CHANGES = [(S(source), S(target)) for source, targets in PROMISED_CHANGES.items() for target in targets.split()]
DISALLOWED_CHANGES = [
    (source, target)
    for source in S
    for target in S
    if source is not target and source is not S.CLOSED and (source, target) not in ALLOWED_CHANGES
]


class TestAccountNumber:
    @pytest.mark.parametrize("sequence_value", SEQUENCE_VALUES)
    def test_generated_number_parses(self, sequence_value: int) -> None:
        number = make_account_number(sequence_value)

        assert number.startswith(str(sequence_value))
        assert len(number) == len(str(sequence_value)) + 1
        assert parse_account_number(number) == number

    @pytest.mark.parametrize("sequence_value", SEQUENCE_VALUES)
    def test_every_single_digit_substitution_is_refused(self, sequence_value: int) -> None:
        number = make_account_number(sequence_value)
        mistyped = [
            number[:i] + digit + number[i + 1 :]
            for i in range(len(number))
            for digit in "0123456789"
            if digit != number[i]
        ]

        accepted = [m for m in mistyped if _parses(m)]

        assert len(mistyped) == 9 * len(number)
        assert accepted == []

    @pytest.mark.parametrize("sequence_value", SEQUENCE_VALUES)
    def test_every_swap_of_adjacent_different_digits_is_refused(self, sequence_value: int) -> None:
        number = make_account_number(sequence_value)
        swapped = [
            number[:i] + number[i + 1] + number[i] + number[i + 2 :]
            for i in range(len(number) - 1)
            if number[i] != number[i + 1]
        ]

        accepted = [s for s in swapped if _parses(s)]

        assert swapped
        assert accepted == []

    def test_mistyped_number_says_check_digit(self) -> None:
        number = make_account_number(12345678)
        mistyped = mistype(number)

        with pytest.raises(InvalidValue, match="check digit mismatch") as caught:
            parse_account_number(mistyped, field="source")

        assert caught.value.field == "source"

    @pytest.mark.parametrize(
        "value",
        [
            "1000000a6",
            "1234567",
            "",
            "12345678901234567",
            " 100000006",
            "100000006\n",
            "100-000-006",
            "١٠٠٠٠٠٠٠٦",
            100000006,
            None,
        ],
    )
    def test_non_digits_or_wrong_length_are_refused(self, value: object) -> None:
        with pytest.raises(InvalidValue, match=re.escape("is not an account number (8 to 16 digits)")) as caught:
            parse_account_number(value)

        assert caught.value.field == "account"


def _parses(value: str) -> bool:
    try:
        parse_account_number(value)
    except InvalidValue:
        return False
    return True


class TestAccountStatus:
    @pytest.mark.parametrize(
        ("status", "incoming", "outgoing"),
        [
            ("active", True, True),
            ("dormant", True, False),
            ("outgoing_blocked", True, False),
            ("incoming_blocked", False, True),
            ("frozen", False, False),
            ("closed", False, False),
        ],
    )
    def test_direction_table(self, status: str, incoming: bool, outgoing: bool) -> None:
        assert AccountStatus(status).accepts_incoming is incoming
        assert AccountStatus(status).allows_outgoing is outgoing

    def test_parse_status_accepts_every_status(self) -> None:
        assert [parse_status(s.value) for s in S] == list(S)

    def test_parse_status_refuses_unknown_and_lists_the_known(self) -> None:
        with pytest.raises(InvalidValue, match="one of: active, dormant") as caught:
            parse_status("blocked")

        assert caught.value.field == "status"


class TestParseAccountType:
    @pytest.mark.parametrize("value", ["standard", "savings", "reward"])
    def test_customer_types_are_accepted(self, value: str) -> None:
        assert parse_account_type(value) == AccountType(value)

    @pytest.mark.parametrize("value", ["settlement", "current", "Savings", ""])
    def test_other_types_are_refused(self, value: str) -> None:
        with pytest.raises(InvalidValue, match=re.escape("(one of: standard, savings, reward)")) as caught:
            parse_account_type(value)

        assert caught.value.field == "type"


class TestCheckStatusChange:
    @pytest.mark.parametrize("status", list(S))
    def test_same_status_is_refused(self, status: AccountStatus) -> None:
        acc = account(status=status)

        with pytest.raises(InvalidStatusChange, match=f"is already {status}"):
            acc.check_status_change(status)

    @pytest.mark.parametrize("target", [s for s in S if s is not S.CLOSED])
    def test_closed_is_final(self, target: AccountStatus) -> None:
        acc = account(status="closed")

        with pytest.raises(InvalidStatusChange, match="closed is final"):
            acc.check_status_change(target)

    @pytest.mark.parametrize("status", [s for s in S if s is not S.CLOSED])
    @pytest.mark.parametrize(("type", "balance"), [("standard", "0.01"), ("standard", "-5.00"), ("savings", "100.00")])
    def test_closing_with_a_nonzero_balance_is_refused(self, status: AccountStatus, type: str, balance: str) -> None:
        acc = account(type=type, status=status, balance=balance, overdraft_limit="10.00" if type == "standard" else "0")

        with pytest.raises(InvalidStatusChange, match=f"balance of {balance} GBP; only an account with a zero balance"):
            acc.check_status_change(S.CLOSED)

    @pytest.mark.parametrize("status", [s for s in S if s is not S.CLOSED])
    def test_closing_with_a_zero_balance_is_allowed(self, status: AccountStatus) -> None:
        account(status=status, balance="0.00").check_status_change(S.CLOSED)

    @pytest.mark.parametrize(
        ("source", "target", "allowed"),
        [
            (S.DORMANT, S.OUTGOING_BLOCKED, "active, closed, frozen"),
            (S.OUTGOING_BLOCKED, S.INCOMING_BLOCKED, "active, closed, frozen"),
            (S.INCOMING_BLOCKED, S.DORMANT, "active, closed, frozen"),
        ],
    )
    def test_disallowed_change_names_the_allowed_ones(
        self, source: AccountStatus, target: AccountStatus, allowed: str
    ) -> None:
        acc = account(status=source)

        with pytest.raises(InvalidStatusChange, match=re.escape(f"from {source} to {target} (allowed: {allowed})")):
            acc.check_status_change(target)

    @pytest.mark.parametrize(("source", "target"), DISALLOWED_CHANGES)
    def test_every_change_outside_the_table_is_refused(self, source: AccountStatus, target: AccountStatus) -> None:
        with pytest.raises(InvalidStatusChange, match="allowed: "):
            account(status=source).check_status_change(target)

    @pytest.mark.parametrize(("source", "target"), ALLOWED_CHANGES)
    def test_every_change_in_the_table_is_allowed_at_zero_balance(
        self, source: AccountStatus, target: AccountStatus
    ) -> None:
        account(status=source).check_status_change(target)

    def test_the_table_in_the_code_is_the_promised_one(self) -> None:
        assert {(s, t) for s, targets in ALLOWED_STATUS_CHANGES.items() for t in targets} == set(ALLOWED_CHANGES)


class TestAccountFloor:
    def test_standard_floor_is_minus_its_overdraft_limit(self) -> None:
        assert account(type="standard", overdraft_limit="100.00").floor == Decimal("-100.00")

    def test_standard_may_pay_down_to_its_overdraft_limit_exactly(self) -> None:
        acc = account(type="standard", balance="20.00", overdraft_limit="100.00")

        assert acc.can_pay(Decimal("120.00"))
        assert not acc.can_pay(Decimal("120.01"))

    def test_standard_without_overdraft_stops_at_zero(self) -> None:
        acc = account(type="standard", balance="20.00")

        assert acc.floor == 0
        assert acc.can_pay(Decimal("20.00"))
        assert not acc.can_pay(Decimal("20.01"))

    @pytest.mark.parametrize("type", ["savings", "reward"])
    def test_savings_and_reward_never_go_below_zero(self, type: str) -> None:
        acc = account(type=type, balance="50.00")

        assert acc.floor == 0
        assert acc.can_pay(Decimal("50.00"))
        assert not acc.can_pay(Decimal("50.01"))

    def test_overdrawn_standard_cannot_pay_more(self) -> None:
        acc = account(type="standard", balance="-100.00", overdraft_limit="100.00")

        assert not acc.can_pay(Decimal("0.01"))

    def test_settlement_has_no_floor(self) -> None:
        acc = account(type="settlement", balance="-1000000.00")

        assert acc.floor is None
        assert acc.can_pay(Decimal("999999999999.99"))


class TestParseEmail:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
            ("ADA@EXAMPLE.ORG", "ada@example.org"),
            ("ada+bank@example.co.uk", "ada+bank@example.co.uk"),
        ],
    )
    def test_valid_address_is_lower_cased(self, value: str, expected: str) -> None:
        assert parse_email(value) == expected

    @pytest.mark.parametrize(
        "value",
        ["", "not-an-email", "ada@", "@example.com", "ada lovelace@example.com", "ada@@example.com", "ada@.com"],
    )
    def test_garbage_is_refused(self, value: str) -> None:
        with pytest.raises(InvalidValue, match="is not a valid email address") as caught:
            parse_email(value)

        assert caught.value.field == "email"


class TestParseCustomerName:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("Ada Lovelace", "Ada Lovelace"), ("  Ada Lovelace \n", "Ada Lovelace"), ("Ada \t  Lovelace", "Ada Lovelace")],
    )
    def test_name_is_trimmed(self, value: str, expected: str) -> None:
        assert parse_customer_name(value) == expected

    @pytest.mark.parametrize("value", ["", "   ", "\t\n"])
    def test_empty_name_is_refused(self, value: str) -> None:
        with pytest.raises(InvalidValue, match="must not be empty") as caught:
            parse_customer_name(value)

        assert caught.value.field == "name"

    def test_name_of_200_characters_is_accepted(self) -> None:
        assert parse_customer_name("a" * 200) == "a" * 200

    def test_name_over_200_characters_is_refused(self) -> None:
        with pytest.raises(InvalidValue, match="at most 200 characters"):
            parse_customer_name("a" * 201)
