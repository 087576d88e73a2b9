"""Errors a user can act on. Each message names the thing that failed and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

QUOTED_LENGTH = 60


def quoted(value: object) -> str:
    """A value as an error message quotes it: its repr, cut short when long, so that an error never carries a
    megabyte a sender put in a field into the record, the task result or an operator's terminal."""
    text = repr(value)
    if len(text) <= QUOTED_LENGTH + 20:
        return text
    return f"{text[:QUOTED_LENGTH]}… ({len(text)} characters)"


class ProcessorError(Exception):
    """Base of every error the processor reports to a user."""


class Unavailable(ProcessorError):
    """A service the request needs (the database, the broker) could not be reached: the same request may succeed
    later, unchanged (the CLIs exit 69, EX_UNAVAILABLE)."""


class InvalidValue(ProcessorError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidRequest(ProcessorError):
    """A payment request that breaks the message contract; `reference` is set when it could be read."""

    def __init__(self, errors: Sequence[FieldError], reference: str | None = None) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = tuple(errors)
        self.reference = reference


class NotFound(ProcessorError):
    pass


class CustomerNotFound(NotFound):
    def __init__(self, number: int) -> None:
        super().__init__(f"customer {number} does not exist")


class AccountNotFound(NotFound):
    def __init__(self, number: str) -> None:
        super().__init__(f"account {number} does not exist")


class DuplicateEmail(ProcessorError):
    def __init__(self, email: str) -> None:
        super().__init__(f"a customer with email {email} is already registered")


class UnsupportedCurrency(ProcessorError):
    def __init__(self, currency: str, supported: Sequence[str]) -> None:
        super().__init__(f"currency {currency} is not supported here (supported: {', '.join(supported)})")


class InvalidStatusChange(ProcessorError):
    pass


class TransactionNotFound(NotFound):
    def __init__(self, reference: str) -> None:
        super().__init__(f"no transaction has the reference {reference}")


class NotReversible(ProcessorError):
    """A reversal an operator asked for that cannot be: nothing to reverse, or reversed already."""


class HeldNotFound(NotFound):
    def __init__(self, held_id: int) -> None:
        super().__init__(f"no held message has the id {held_id}")


class HeldActionRefused(ProcessorError):
    """A resend or a resolution of a held message that cannot be done (resolved already, nothing to send)."""
