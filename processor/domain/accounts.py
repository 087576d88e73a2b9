"""Customers, accounts, their types and statuses, and the rules that say which way money may move."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from stdnum import damm

from processor.domain.errors import InvalidStatusChange, InvalidValue, quoted
from processor.domain.money import ZERO, format_amount


class AccountType(StrEnum):
    STANDARD = "standard"
    SAVINGS = "savings"
    REWARD = "reward"
    # The bank's own account per currency, the other side of every deposit and withdrawal.
    SETTLEMENT = "settlement"


CUSTOMER_ACCOUNT_TYPES = (AccountType.STANDARD, AccountType.SAVINGS, AccountType.REWARD)

# The bank's settlement side of a currency is spread over this many accounts, so that concurrent deposits and
# withdrawals to different customer accounts do not all queue for one locked row.
SETTLEMENT_SLOTS = 8


def settlement_slot(number: str) -> int:
    """Which of its currency's settlement accounts pays into or out of a customer account: fixed per account."""
    # A customer account's own payments already queue for its row, so tying it to one slot adds no waiting.
    return zlib.crc32(number.encode()) % SETTLEMENT_SLOTS


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DORMANT = "dormant"
    OUTGOING_BLOCKED = "outgoing_blocked"
    INCOMING_BLOCKED = "incoming_blocked"
    FROZEN = "frozen"
    CLOSED = "closed"

    @property
    def accepts_incoming(self) -> bool:
        return self in (AccountStatus.ACTIVE, AccountStatus.DORMANT, AccountStatus.OUTGOING_BLOCKED)

    @property
    def allows_outgoing(self) -> bool:
        return self in (AccountStatus.ACTIVE, AccountStatus.INCOMING_BLOCKED)


# Restrictions are lifted back to active, never swapped for one another directly, so each change is one
# decision an operator can explain in the audit log. Frozen can become anything because an investigation
# may end in any of them. Closed is final.
ALLOWED_STATUS_CHANGES: dict[AccountStatus, frozenset[AccountStatus]] = {
    AccountStatus.ACTIVE: frozenset(
        {
            AccountStatus.DORMANT,
            AccountStatus.OUTGOING_BLOCKED,
            AccountStatus.INCOMING_BLOCKED,
            AccountStatus.FROZEN,
            AccountStatus.CLOSED,
        }
    ),
    AccountStatus.DORMANT: frozenset({AccountStatus.ACTIVE, AccountStatus.FROZEN, AccountStatus.CLOSED}),
    AccountStatus.OUTGOING_BLOCKED: frozenset({AccountStatus.ACTIVE, AccountStatus.FROZEN, AccountStatus.CLOSED}),
    AccountStatus.INCOMING_BLOCKED: frozenset({AccountStatus.ACTIVE, AccountStatus.FROZEN, AccountStatus.CLOSED}),
    AccountStatus.FROZEN: frozenset(set(AccountStatus) - {AccountStatus.FROZEN}),
    AccountStatus.CLOSED: frozenset(),
}


def parse_status(value: str) -> AccountStatus:
    try:
        return AccountStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in AccountStatus)
        raise InvalidValue("status", f"{quoted(value)} is not a status (one of: {known})") from None


def parse_account_type(value: str) -> AccountType:
    if value not in CUSTOMER_ACCOUNT_TYPES:
        known = ", ".join(t.value for t in CUSTOMER_ACCOUNT_TYPES)
        raise InvalidValue("type", f"{quoted(value)} is not an account type (one of: {known})")
    return AccountType(value)


# An account number is a sequence value followed by a Damm check digit, which catches every single-digit
# mistake and every swap of two adjacent digits.
_ACCOUNT_NUMBER = re.compile(r"[0-9]{8,16}")


def make_account_number(sequence_value: int) -> str:
    body = str(sequence_value)
    return body + damm.calc_check_digit(body)


def parse_account_number(value: object, field: str = "account") -> str:
    if not isinstance(value, str) or not _ACCOUNT_NUMBER.fullmatch(value):
        raise InvalidValue(field, f"{quoted(value)} is not an account number (8 to 16 digits)")
    if damm.checksum(value) != 0:
        raise InvalidValue(field, f"{value} is not a valid account number (check digit mismatch: mistyped?)")
    return value


def parse_customer_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise InvalidValue("name", "must not be empty")
    if len(name) > 200:
        raise InvalidValue("name", "must be at most 200 characters")
    return name


def parse_email(value: str) -> str:
    """A syntactically valid address, lower-cased so that uniqueness ignores case."""
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidValue("email", f"{quoted(value)} is not a valid email address: {error}") from None
    return checked.normalized.lower()


@dataclass(frozen=True)
class Customer:
    number: int
    name: str
    email: str


@dataclass
class Account:
    id: int
    number: str
    customer: int | None
    type: AccountType
    status: AccountStatus
    currency: str
    balance: Decimal
    overdraft_limit: Decimal = ZERO
    reward_points: int = 0
    settlement_slot: int = 0  # which of its currency's settlement accounts this is; 0 for a customer account

    @property
    def floor(self) -> Decimal | None:
        """The lowest balance this account may reach; None where there is no floor (settlement)."""
        if self.type is AccountType.SETTLEMENT:
            return None
        return -self.overdraft_limit

    def can_pay(self, amount: Decimal) -> bool:
        floor = self.floor
        return floor is None or self.balance - amount >= floor

    def check_status_change(self, target: AccountStatus) -> None:
        if self.type is AccountType.SETTLEMENT:
            raise InvalidStatusChange(
                f"account {self.number} is the bank's {self.currency} settlement account; its status does not change"
            )
        if target is self.status:
            raise InvalidStatusChange(f"account {self.number} is already {target}")
        allowed = ALLOWED_STATUS_CHANGES[self.status]
        if target not in allowed:
            if not allowed:
                raise InvalidStatusChange(f"account {self.number} is closed, and closed is final")
            options = ", ".join(sorted(allowed))
            raise InvalidStatusChange(
                f"account {self.number} cannot go from {self.status} to {target} (allowed: {options})"
            )
        if target is AccountStatus.CLOSED and self.balance != 0:
            raise InvalidStatusChange(
                f"account {self.number} has a balance of {format_amount(self.balance)} {self.currency};"
                " only an account with a zero balance can be closed"
            )
