"""Money is Decimal with two decimal places; it never passes through a binary float."""

from __future__ import annotations

import re
from decimal import Decimal

from processor.domain.errors import InvalidValue, quoted

# Every amount carries two decimal places, so only currencies whose ISO 4217 minor unit is 2 can be configured.
MINOR_UNITS = 2
CENT = Decimal(1).scaleb(-MINOR_UNITS)
ZERO = Decimal("0.00")
# NUMERIC(20, 2) columns hold balances; a cap on single amounts keeps any sum of them far from overflow.
MAX_AMOUNT = Decimal("999999999999.99")

_DECIMAL_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


def parse_amount(value: object, field: str = "amount") -> Decimal:
    """A positive amount with at most two decimal places, from a decimal string, an int or a Decimal."""
    amount = _parse_decimal(value, field)
    if amount == 0:
        raise InvalidValue(field, "must be greater than zero")
    return amount


def parse_limit(value: object, field: str) -> Decimal:
    """A non-negative amount with at most two decimal places, such as an overdraft limit."""
    return _parse_decimal(value, field)


def _parse_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        kind = "a binary float" if isinstance(value, float) else type(value).__name__
        raise InvalidValue(field, f"must be a decimal string such as '125.50', not {kind}")
    if isinstance(value, str) and not _DECIMAL_STRING.fullmatch(value):
        raise InvalidValue(field, f"{quoted(value)} is not a decimal string such as '125.50'")
    amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidValue(field, "must be a finite number")
    # is_signed, not < 0: a "-0" would otherwise be stored, shown and audited as -0.00.
    if amount.is_signed():
        raise InvalidValue(field, f"must be positive, got {value}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise InvalidValue(field, f"{amount} has more than two decimal places")
    if amount > MAX_AMOUNT:
        raise InvalidValue(field, f"{amount} is above the maximum of {MAX_AMOUNT}")
    return amount.quantize(CENT)


def parse_currency(value: object, field: str = "currency") -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidValue(field, f"{quoted(value)} is not an ISO 4217 code of three capital letters such as 'GBP'")
    return value


def format_amount(amount: Decimal) -> str:
    return str(amount.quantize(CENT))
