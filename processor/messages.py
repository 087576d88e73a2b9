"""The message contract (docs/architecture.md): queue, task names and kwargs, shared by workers and `submit`.

Each field is checked by the domain's own parser, so a message is valid here exactly when the processor would
accept it: a producer that validates with these models never sends what a worker would reject as malformed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from processor.domain.accounts import parse_account_number
from processor.domain.errors import FieldError, InvalidRequest, InvalidValue
from processor.domain.money import format_amount, parse_amount, parse_currency
from processor.domain.requests import (
    DESCRIPTION_MAX_LENGTH,
    REFERENCE_PATTERN,
    InvalidPayment,
    PaymentRequest,
    PaymentType,
    parse_description,
    parse_payment_type,
    parse_reference,
)

QUEUE = "payments"


def _domain(parse: Callable[[object], object]) -> PlainValidator:
    def validate(value: object) -> object:
        try:
            return parse(value)
        except InvalidValue as error:
            raise PydanticCustomError("invalid_value", error.message.replace("{", "{{").replace("}", "}}")) from None

    return PlainValidator(validate)


Reference = Annotated[
    str,
    _domain(parse_reference),
    WithJsonSchema({"type": "string", "pattern": f"^{REFERENCE_PATTERN.pattern}$"}),
]
Amount = Annotated[
    Decimal,
    _domain(parse_amount),
    PlainSerializer(format_amount, return_type=str),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$"}, {"type": "integer", "minimum": 1}]}
    ),
]
Currency = Annotated[str, _domain(parse_currency), WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$"})]
AccountNumber = Annotated[
    str, _domain(parse_account_number), WithJsonSchema({"type": "string", "pattern": "^[0-9]{8,16}$"})
]
Description = Annotated[
    str | None,
    _domain(parse_description),
    WithJsonSchema({"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH, "pattern": "^[^\\x00-\\x1f\\x7f]*$"}),
]


class PaymentMessage(BaseModel):
    """The kwargs common to every payment task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: ClassVar[str]
    type: ClassVar[PaymentType]
    # Which kwarg carries the request's source and destination account, by the domain's names.
    accounts: ClassVar[dict[str, str]]

    reference: Reference
    amount: Amount
    currency: Currency
    description: Description = None

    def kwargs(self) -> dict[str, str]:
        """The task's keyword arguments, as JSON values."""
        return self.model_dump(mode="json", exclude_none=True)

    def request(self) -> PaymentRequest:
        accounts = {name: getattr(self, kwarg) for name, kwarg in self.accounts.items()}
        return PaymentRequest(
            reference=self.reference,
            type=self.type,
            amount=self.amount,
            currency=self.currency,
            source=accounts.get("source"),
            destination=accounts.get("destination"),
            description=self.description or None,
        )

    @classmethod
    def domain_fields(cls, kwargs: Mapping[str, object]) -> dict[str, object]:
        """The kwargs under the domain's names (type, source, destination), however malformed they are."""
        fields = {key: value for key, value in kwargs.items() if key not in cls.accounts.values()}
        fields.update({name: kwargs.get(kwarg) for name, kwarg in cls.accounts.items()})
        return {**fields, "type": cls.type.value}


class Deposit(PaymentMessage):
    task: ClassVar[str] = "payments.deposit"
    type: ClassVar[PaymentType] = PaymentType.DEPOSIT
    accounts: ClassVar[dict[str, str]] = {"destination": "account"}

    account: AccountNumber


class Withdrawal(PaymentMessage):
    task: ClassVar[str] = "payments.withdraw"
    type: ClassVar[PaymentType] = PaymentType.WITHDRAWAL
    accounts: ClassVar[dict[str, str]] = {"source": "account"}

    account: AccountNumber


class Transfer(PaymentMessage):
    task: ClassVar[str] = "payments.transfer"
    type: ClassVar[PaymentType] = PaymentType.TRANSFER
    accounts: ClassVar[dict[str, str]] = {"source": "source", "destination": "destination"}

    source: AccountNumber
    destination: AccountNumber


MESSAGES: dict[str, type[PaymentMessage]] = {m.task: m for m in (Deposit, Withdrawal, Transfer)}
BY_TYPE: dict[PaymentType, type[PaymentMessage]] = {m.type: m for m in MESSAGES.values()}


BATCH_TASK = "payments.batch"
BATCH_MAX = 1000


def row(message: PaymentMessage) -> dict[str, str]:
    """A payment as an item of a batch: the keys of a payment file row, as JSON values."""
    request = message.request()
    item = {"reference": request.reference, **request.payload()}
    return {key: value for key, value in item.items() if value is not None}


def batch_kwargs(messages: Sequence[PaymentMessage]) -> dict[str, list[dict[str, str]]]:
    """The kwargs of a payments.batch message carrying these payments."""
    if not 1 <= len(messages) <= BATCH_MAX:
        raise ValueError(f"a batch carries 1 to {BATCH_MAX} payments, not {len(messages)}")
    return {"payments": [row(m) for m in messages]}


@dataclass(frozen=True)
class Unreadable:
    """An item of a batch that cannot be tied to a reference, so no outcome can be recorded for it."""

    index: int
    item: Mapping[str, object]
    error: InvalidRequest


def batch_item(item: object) -> Mapping[str, object]:
    """An item of a batch as fields: one that is not an object is kept whole under "item", so it can be held."""
    return item if isinstance(item, dict) else {"item": item}


def read_batch(
    args: Sequence[object], kwargs: Mapping[str, object]
) -> tuple[list[tuple[int, PaymentRequest | InvalidPayment]], list[Unreadable]]:
    """What a worker received in a payments.batch message: each item, by its index, as if it had been sent alone.

    Raises InvalidRequest when the message itself is malformed (positional arguments, no list of 1 to 1,000
    payments, other kwargs): then not one of its items can be trusted to be what the sender meant.
    """
    errors: list[FieldError] = []
    if args:
        errors.append(
            FieldError("args", f"{len(args)} positional argument(s); {BATCH_TASK} takes keyword arguments only")
        )
    unexpected = sorted(str(key)[:40] for key in kwargs if key != "payments")
    if unexpected:
        errors.append(FieldError("message", f"unexpected field(s) for {BATCH_TASK}: {', '.join(unexpected[:5])}"))
    payments = kwargs.get("payments")
    if not isinstance(payments, list) or not 1 <= len(payments) <= BATCH_MAX:
        errors.append(FieldError("payments", f"must be a list of 1 to {BATCH_MAX} payments"))
    if errors or not isinstance(payments, list):
        raise InvalidRequest(errors)
    requests: list[tuple[int, PaymentRequest | InvalidPayment]] = []
    unreadable: list[Unreadable] = []
    for index, item in enumerate(payments):
        fields = batch_item(item)
        try:
            requests.append((index, read_fields(fields)))
        except InvalidRequest as error:
            unreadable.append(Unreadable(index, fields, error))
    return requests, unreadable


def build(message: type[PaymentMessage], **kwargs: Any) -> PaymentMessage:
    """A validated message; raises InvalidRequest naming every broken field."""
    try:
        return message.model_validate(kwargs)
    except ValidationError as error:
        reference = kwargs.get("reference")
        readable = _readable_reference(reference)
        raise InvalidRequest(field_errors(error, message), readable) from None


def from_fields(fields: Mapping[str, object]) -> PaymentMessage:
    """A validated message from a request in the domain's shape (type, source, destination), as in a payment file.

    Raises InvalidRequest naming every broken field, the type's unused account field included.
    """
    reference = _readable_reference(fields.get("reference"))
    kwargs = {
        k: v for k in ("reference", "amount", "currency", "description") if (v := fields.get(k)) not in (None, "")
    }
    errors: list[FieldError] = []
    try:
        payment_type = parse_payment_type(fields.get("type"))
    except InvalidValue as error:
        # Without a type there is no message to check the accounts against; the other fields are still reported.
        errors.append(FieldError(error.field, error.message))
        try:
            PaymentMessage.model_validate(kwargs)
        except ValidationError as common:
            errors.extend(field_errors(common, PaymentMessage))
        raise InvalidRequest(errors, reference) from None
    message = BY_TYPE[payment_type]
    missing: set[str] = set()
    for name in ("source", "destination"):
        value, kwarg = fields.get(name), message.accounts.get(name)
        if kwarg is None and value not in (None, ""):
            errors.append(FieldError(name, f"must be empty for a {payment_type}"))
        elif kwarg is None:
            continue
        elif value in (None, ""):
            errors.append(FieldError(kwarg, f"is required for a {payment_type}"))
            missing.add(kwarg)
        else:
            kwargs[kwarg] = value
    try:
        valid = message.model_validate(kwargs)
    except ValidationError as error:
        errors.extend(e for e in field_errors(error, message) if e.field not in missing)
    if errors:
        # The message names a deposit's or withdrawal's account `account`; the sender wrote source or destination.
        renamed = {kwarg: name for name, kwarg in message.accounts.items()}
        raise InvalidRequest([FieldError(renamed.get(e.field, e.field), e.message) for e in errors], reference)
    return valid


def read_fields(fields: Mapping[str, object]) -> PaymentRequest | InvalidPayment:
    """A request in the domain's shape (a file row, an item of a batch): valid, or one to record as invalid.

    Raises InvalidRequest without a reference when the request cannot be tied to one (no readable reference).
    """
    try:
        return from_fields(fields).request()
    except InvalidRequest as error:
        if error.reference is None:
            raise
        return InvalidPayment(error.reference, dict(fields), error.errors)


def read(task: str, args: Sequence[object], kwargs: Mapping[str, object]) -> PaymentRequest | InvalidPayment:
    """What a worker received: a valid request, or one to record as invalid.

    Raises InvalidRequest without a reference when the message cannot be tied to one (no readable reference).
    """
    message = MESSAGES[task]
    errors: list[FieldError] = []
    if args:
        errors.append(FieldError("args", f"{len(args)} positional argument(s); {task} takes keyword arguments only"))
    try:
        valid = message.model_validate(kwargs)
    except ValidationError as error:
        errors.extend(field_errors(error, message))
    if errors:
        return _invalid(message, kwargs, errors)
    return valid.request()


def _invalid(message: type[PaymentMessage], kwargs: Mapping[str, object], errors: list[FieldError]) -> InvalidPayment:
    reference = _readable_reference(kwargs.get("reference"))
    if reference is None:
        raise InvalidRequest(errors)
    return InvalidPayment(reference, message.domain_fields(kwargs), tuple(errors))


def _readable_reference(value: object) -> str | None:
    try:
        return parse_reference(value)
    except InvalidValue:
        return None


def field_errors(error: ValidationError, message: type[PaymentMessage]) -> list[FieldError]:
    """One error per field, in words a sender can act on."""
    errors: list[FieldError] = []
    unexpected: list[str] = []
    for detail in error.errors(include_url=False, include_input=False):
        name = str(detail["loc"][0]) if detail["loc"] else "message"
        if detail["type"] == "extra_forbidden":
            unexpected.append(name)
        elif detail["type"] == "missing":
            errors.append(FieldError(name, "is required"))
        else:
            errors.append(FieldError(name, detail["msg"]))
    if unexpected:
        # A message with thousands of junk keys gets one error, not thousands.
        shown = ", ".join(repr(name[:40]) for name in unexpected[:5])
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        errors.append(FieldError("message", f"unexpected field(s) for {message.task}: {shown}{more}"))
    return errors
