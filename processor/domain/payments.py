"""Payment requests, the order in which their rules are checked, and what one request does to the books."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import TypeVar

from processor.domain.accounts import Account, AccountStatus, AccountType, parse_account_number
from processor.domain.errors import FieldError, InvalidRequest, InvalidValue
from processor.domain.money import format_amount, parse_amount, parse_currency


class PaymentType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


class Reason(StrEnum):
    """Why a request was rejected, in the order the rules are checked: the first that fails is the reason."""

    INVALID_REQUEST = "invalid_request"
    SAME_ACCOUNT = "same_account"
    ACCOUNT_NOT_FOUND = "account_not_found"
    CURRENCY_MISMATCH = "currency_mismatch"
    ACCOUNT_CLOSED = "account_closed"
    OUTGOING_BLOCKED = "outgoing_blocked"
    INCOMING_BLOCKED = "incoming_blocked"
    WITHDRAWAL_LIMIT_REACHED = "withdrawal_limit_reached"
    INSUFFICIENT_FUNDS = "insufficient_funds"


class OutcomeStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    PENDING = "pending"


class Delivery(StrEnum):
    """How this attempt of a reference relates to the outcome recorded for it."""

    FIRST = "first"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


T = TypeVar("T")
REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The fields whose difference makes a resend of a reference a conflict; a new description does not.
IDENTITY_FIELDS = ("type", "source", "destination", "amount", "currency")
PAYLOAD_FIELDS = (*IDENTITY_FIELDS, "description")
DESCRIPTION_MAX_LENGTH = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
CLIP_LENGTH = 500
_ACCOUNT_FIELDS = {
    PaymentType.DEPOSIT: ("destination",),
    PaymentType.WITHDRAWAL: ("source",),
    PaymentType.TRANSFER: ("source", "destination"),
}


def parse_reference(value: object) -> str:
    if not isinstance(value, str) or not REFERENCE_PATTERN.fullmatch(value):
        raise InvalidValue("reference", f"{value!r} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -")
    return value


def parse_description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX_LENGTH:
        raise InvalidValue("description", f"must be text of at most {DESCRIPTION_MAX_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidValue("description", "must not contain control characters (such as NUL or a line break)")
    if _SURROGATE.search(value):
        raise InvalidValue("description", "must be Unicode text (it has a lone surrogate, as from undecodable bytes)")
    return value


def parse_payment_type(value: object) -> PaymentType:
    if not isinstance(value, str) or value not in PaymentType._value2member_map_:
        known = ", ".join(t.value for t in PaymentType)
        raise InvalidValue("type", f"{value!r} is not a payment type (one of: {known})")
    return PaymentType(value)


@dataclass(frozen=True)
class PaymentRequest:
    reference: str
    type: PaymentType
    amount: Decimal
    currency: str
    source: str | None = None
    destination: str | None = None
    description: str | None = None

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(n for n in (self.source, self.destination) if n is not None)

    def identity(self) -> dict[str, str | None]:
        return {
            "type": self.type.value,
            "source": self.source,
            "destination": self.destination,
            "amount": format_amount(self.amount),
            "currency": self.currency,
        }

    def payload(self) -> dict[str, str | None]:
        return {**self.identity(), "description": self.description}

    def fingerprint(self) -> str:
        return fingerprint(self.identity())


@dataclass(frozen=True)
class InvalidPayment:
    """A request whose reference could be read but which breaks the contract; it is recorded as rejected."""

    reference: str
    fields: Mapping[str, object]
    errors: tuple[FieldError, ...]

    def identity(self) -> dict[str, object]:
        return {name: self.payload().get(name) for name in IDENTITY_FIELDS}

    def payload(self) -> dict[str, object]:
        """The contract's fields as received, clipped, anything that is not a JSON scalar turned into text."""
        return {key: clip(self.fields[key]) for key in PAYLOAD_FIELDS if key in self.fields}

    def fingerprint(self) -> str:
        return fingerprint(self.identity())


def clip(value: object) -> object:
    """What arrived, made storable: a short excerpt of anything oversized, and no NUL (PostgreSQL refuses it)."""
    if not _is_json_scalar(value):
        value = str(value)
    if isinstance(value, str):
        # Lone surrogates cannot be stored as UTF-8: keep them as escapes, like NUL.
        text = value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
        return f"{text[:CLIP_LENGTH]}… ({len(value)} characters)" if len(text) > CLIP_LENGTH else text
    return value


def _is_json_scalar(value: object) -> bool:
    # A float stays a float so that the record shows it arrived as one (and was refused for it).
    return value is None or isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value))


def fingerprint(identity: Mapping[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def month_start(moment: datetime) -> datetime:
    """The start of the calendar month (UTC) that a moment falls in."""
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def differing_fields(recorded: Mapping[str, object], attempt: Mapping[str, object]) -> list[str]:
    return [name for name in IDENTITY_FIELDS if recorded.get(name) != attempt.get(name)]


def parse_payment(fields: Mapping[str, object]) -> PaymentRequest:
    """Validate a request's fields, reporting every broken one at once; raises InvalidRequest."""
    errors: list[FieldError] = []

    def check(parse: Callable[[object], T], value: object) -> T | None:
        try:
            return parse(value)
        except InvalidValue as error:
            errors.append(FieldError(error.field, error.message))
            return None

    reference = check(parse_reference, fields.get("reference"))
    payment_type = check(parse_payment_type, fields.get("type"))
    amount = check(parse_amount, fields.get("amount"))
    currency = check(parse_currency, fields.get("currency"))
    accounts: dict[str, str | None] = {"source": None, "destination": None}
    if payment_type is not None:
        needed = _ACCOUNT_FIELDS[payment_type]
        for name in accounts:
            value = fields.get(name)
            if name not in needed:
                if value not in (None, ""):
                    errors.append(FieldError(name, f"must be empty for a {payment_type}"))
            elif value in (None, ""):
                errors.append(FieldError(name, f"is required for a {payment_type}"))
            else:
                accounts[name] = check(partial(parse_account_number, field=name), value)
    description = check(parse_description, fields.get("description"))
    if errors or reference is None or payment_type is None or amount is None or currency is None:
        raise InvalidRequest(errors, reference)
    return PaymentRequest(
        reference=reference,
        type=payment_type,
        amount=amount,
        currency=currency,
        source=accounts["source"],
        destination=accounts["destination"],
        description=description or None,
    )


def parse_or_invalid(fields: Mapping[str, object]) -> PaymentRequest | InvalidPayment:
    """A valid request, or one to record as invalid; raises InvalidRequest only when no reference can be read."""
    try:
        return parse_payment(fields)
    except InvalidRequest as error:
        if error.reference is None:
            raise
        return InvalidPayment(error.reference, dict(fields), error.errors)


@dataclass(frozen=True)
class Conflict:
    """A later attempt of a reference with another payload; it had no effect."""

    fields: tuple[str, ...]
    payload: Mapping[str, object]
    fingerprint: str
    at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    reference: str
    status: OutcomeStatus
    reason: Reason | None = None
    type: str | None = None
    amount: str | None = None
    currency: str | None = None
    source: str | None = None
    destination: str | None = None
    errors: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    delivery: Delivery = Delivery.FIRST

    def identity(self) -> dict[str, str | None]:
        """The recorded payment's identity fields, to compare with a request's (PaymentRequest.identity)."""
        return {
            "type": self.type,
            "source": self.source,
            "destination": self.destination,
            "amount": self.amount,
            "currency": self.currency,
        }


@dataclass(frozen=True)
class Policy:
    savings_monthly_outgoing_limit: int = 6
    reward_points_per_unit: int = 1
    reward_unit: Decimal = Decimal("10.00")

    def reward_points(self, amount: Decimal) -> int:
        return int(amount // self.reward_unit) * self.reward_points_per_unit


@dataclass(frozen=True)
class Posting:
    account_id: int
    amount: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Decision:
    reason: Reason | None
    postings: tuple[Posting, ...] = ()

    @property
    def applied(self) -> bool:
        return self.reason is None


@dataclass
class Book:
    """The accounts a batch holds locked, and the rules that move money between them, checked in memory."""

    accounts: dict[str, Account]
    settlement: dict[str, Account]
    outgoing_this_month: dict[int, int]
    policy: Policy = field(default_factory=Policy)
    changed: dict[int, Account] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        accounts: Iterable[Account],
        outgoing_this_month: Mapping[int, int],
        policy: Policy,
    ) -> Book:
        customer_accounts: dict[str, Account] = {}
        settlement: dict[str, Account] = {}
        for account in accounts:
            if account.type is AccountType.SETTLEMENT:
                settlement[account.currency] = account
            else:
                customer_accounts[account.number] = account
        return cls(customer_accounts, settlement, dict(outgoing_this_month), policy)

    def account_id(self, number: str | None) -> int | None:
        account = self.accounts.get(number) if number else None
        return None if account is None else account.id

    def apply(self, request: PaymentRequest) -> Decision:
        source = self.accounts.get(request.source) if request.source else None
        destination = self.accounts.get(request.destination) if request.destination else None
        reason = self._reason(request, source, destination)
        if reason is not None:
            return Decision(reason)
        debit = source or self.settlement[request.currency]
        credit = destination or self.settlement[request.currency]
        debit.balance -= request.amount
        credit.balance += request.amount
        if source is not None and source.type is AccountType.SAVINGS:
            self.outgoing_this_month[source.id] = self.outgoing_this_month.get(source.id, 0) + 1
        if request.type is PaymentType.DEPOSIT and credit.type is AccountType.REWARD:
            credit.reward_points += self.policy.reward_points(request.amount)
        self.changed[debit.id] = debit
        self.changed[credit.id] = credit
        return Decision(
            None,
            (
                Posting(debit.id, -request.amount, debit.balance),
                Posting(credit.id, request.amount, credit.balance),
            ),
        )

    def _reason(self, request: PaymentRequest, source: Account | None, destination: Account | None) -> Reason | None:
        if request.source is not None and request.source == request.destination:
            return Reason.SAME_ACCOUNT
        touched = [a for a in (source, destination) if a is not None]
        if len(touched) != len(request.accounts):
            return Reason.ACCOUNT_NOT_FOUND
        if any(a.currency != request.currency for a in touched):
            return Reason.CURRENCY_MISMATCH
        if request.currency not in self.settlement and request.type is not PaymentType.TRANSFER:
            # An account in this currency exists, so its settlement account does too; not locking it is a bug.
            raise LookupError(f"settlement account for {request.currency} was not locked")
        if any(a.status is AccountStatus.CLOSED for a in touched):
            return Reason.ACCOUNT_CLOSED
        if source is not None and not source.status.allows_outgoing:
            return Reason.OUTGOING_BLOCKED
        if destination is not None and not destination.status.accepts_incoming:
            return Reason.INCOMING_BLOCKED
        if (
            source is not None
            and source.type is AccountType.SAVINGS
            and self.outgoing_this_month.get(source.id, 0) >= self.policy.savings_monthly_outgoing_limit
        ):
            return Reason.WITHDRAWAL_LIMIT_REACHED
        if source is not None and not source.can_pay(request.amount):
            return Reason.INSUFFICIENT_FUNDS
        return None


_FIELD_PARSERS: dict[str, Callable[[object], object]] = {
    "type": parse_payment_type,
    "amount": parse_amount,
    "currency": parse_currency,
    "source": parse_account_number,
    "destination": parse_account_number,
}


@dataclass(frozen=True)
class Recorded:
    """The outcome recorded for a reference, with the request it was recorded for."""

    reference: str
    status: OutcomeStatus
    reason: Reason | None
    payload: Mapping[str, object]
    fingerprint: str
    errors: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    id: int | None = None

    def outcome(self, delivery: Delivery = Delivery.FIRST) -> Outcome:
        def text(name: str) -> str | None:
            value = self.payload.get(name)
            if value is None:
                return None
            if self.reason is Reason.INVALID_REQUEST:
                # The outcome promises well-formed values; what was malformed is in `errors`.
                try:
                    _FIELD_PARSERS[name](value)
                except InvalidValue:
                    return None
            return format_amount(parse_amount(value)) if name == "amount" else str(value)

        return Outcome(
            reference=self.reference,
            status=self.status,
            reason=self.reason,
            type=text("type"),
            amount=text("amount"),
            currency=text("currency"),
            source=text("source"),
            destination=text("destination"),
            errors=self.errors,
            conflicts=self.conflicts,
            delivery=delivery,
        )
