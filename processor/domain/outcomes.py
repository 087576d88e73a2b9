"""What is recorded: outcomes, the reasons a request is rejected, and later attempts that conflict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from processor.domain.accounts import parse_account_number
from processor.domain.errors import InvalidValue
from processor.domain.money import format_amount, parse_amount, parse_currency
from processor.domain.requests import CONFLICT_FIELDS, parse_payment_type


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


def differing_fields(recorded: Mapping[str, object], attempt: Mapping[str, object]) -> list[str]:
    return [name for name in CONFLICT_FIELDS if recorded.get(name) != attempt.get(name)]


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
