"""What arrives: payment requests, the rules each of their fields must follow, and their fingerprints."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from processor.domain.accounts import settlement_slot
from processor.domain.errors import FieldError, InvalidValue, quoted
from processor.domain.money import format_amount


class PaymentType(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"


REFERENCE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The fields whose difference makes a resend of a reference a conflict; a new description does not.
IDENTITY_FIELDS = ("type", "source", "destination", "amount", "currency")
# What a conflicting attempt is compared on: a reversal's identity also names the transaction it reverses.
CONFLICT_FIELDS = (*IDENTITY_FIELDS, "reverses")
PAYLOAD_FIELDS = (*IDENTITY_FIELDS, "description")
DESCRIPTION_MAX_LENGTH = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
CLIP_LENGTH = 500


def parse_reference(value: object) -> str:
    if not isinstance(value, str) or not REFERENCE_PATTERN.fullmatch(value):
        raise InvalidValue("reference", f"{quoted(value)} is not 1 to 64 characters of A-Z a-z 0-9 . _ : -")
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
        raise InvalidValue("type", f"{quoted(value)} is not a payment type (one of: {known})")
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
    # The reference of the applied transaction this one reverses (an operator's correction, never a message's).
    reverses: str | None = None

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(n for n in (self.source, self.destination) if n is not None)

    @property
    def settlement(self) -> tuple[str, int] | None:
        """The settlement account (currency, slot) a deposit or withdrawal posts against; None for a transfer."""
        if self.type is PaymentType.TRANSFER:
            return None
        customer = self.destination if self.type is PaymentType.DEPOSIT else self.source
        return (self.currency, settlement_slot(customer or ""))

    def identity(self) -> dict[str, str | None]:
        identity = {
            "type": self.type.value,
            "source": self.source,
            "destination": self.destination,
            "amount": format_amount(self.amount),
            "currency": self.currency,
        }
        # Only a reversal names one, so every other payment keeps the fingerprint it always had.
        if self.reverses is not None:
            identity["reverses"] = self.reverses
        return identity

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
