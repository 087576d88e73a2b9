"""Sample payment files: realistic rows for some accounts, with a few deliberately bad ones, written as they are made.

Row n of a seed is always the same payment whatever the number of rows, so a longer file of the same seed repeats
the shorter one's payments under the same references instead of conflicting with them.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TextIO

import sqlalchemy

from processor.bootstrap import unit_of_work
from processor.config import get_settings
from processor.db.uow import UnitOfWork
from processor.domain.accounts import AccountStatus, AccountType, parse_account_number
from processor.domain.errors import CustomerNotFound, ProcessorError
from processor.services.customers import get_customer
from submit.files import COLUMNS, FileFormat

# `make demo` registers exactly these two customers on its fresh database, so they get the first two numbers.
DEMO_CUSTOMERS = (100001, 100002)
CURRENCY = "GBP"
UNKNOWN_TYPE = "refund"

_TYPES = ("transfer", "deposit", "withdrawal")
_TYPE_WEIGHTS = (45, 40, 15)
_DESCRIPTIONS = {
    "deposit": ("salary", "cash deposit", "refund", "interest", "dividend", ""),
    "withdrawal": ("ATM withdrawal", "card payment", "cash", ""),
    "transfer": ("rent", "invoice {n}", "dinner, split three ways", "savings", "gift", "loan repayment", ""),
}


class Flaw(StrEnum):
    """What is wrong with a deliberately bad row; each is refused by `submit file` before anything is sent."""

    MISTYPED_ACCOUNT = "mistyped account number (last digit changed)"
    THREE_DECIMALS = "amount with three decimal places"
    NEGATIVE_AMOUNT = "negative amount"
    UNKNOWN_TYPE = "unknown type"
    DEPOSIT_WITHOUT_DESTINATION = "deposit without a destination"


@dataclass(frozen=True)
class BadRow:
    line: int
    field: str
    flaw: Flaw


@dataclass(frozen=True)
class Payees:
    """The accounts a sample pays between: credits to any of `destinations`, debits from any of `sources`."""

    destinations: tuple[str, ...]
    sources: tuple[str, ...]


class NoDemoPayees(ProcessorError):
    """The demo's customers have no account a sample could pay between: the demo has not been set up."""


def given_payees(numbers: Iterable[str]) -> Payees:
    """Accounts named by the user, each both a source and a destination; raises InvalidValue for a bad number."""
    valid = tuple(dict.fromkeys(parse_account_number(number) for number in numbers))
    return Payees(destinations=valid, sources=valid)


def demo_payees(make_uow: Callable[[], UnitOfWork] = unit_of_work) -> Payees:
    """The active GBP accounts of the demo's customers, read through the customers service."""
    found = []
    for customer in DEMO_CUSTOMERS:
        try:
            _, accounts = get_customer(make_uow(), customer)
        except CustomerNotFound:
            continue
        found += [a for a in accounts if a.status is AccountStatus.ACTIVE and a.currency == CURRENCY]
    if not found:
        url = sqlalchemy.engine.make_url(get_settings().database_url).render_as_string(hide_password=True)
        customers = " and ".join(str(number) for number in DEMO_CUSTOMERS)
        raise NoDemoPayees(
            f"the demo customers {customers} have no active {CURRENCY} account in the database at {url}"
            " (DATABASE_URL): run 'make demo' first, or name accounts with --account"
        )
    # A savings account makes only a few outgoing payments a month: as a source, most of its rows would be rejected.
    sources = tuple(a.number for a in found if a.type is not AccountType.SAVINGS)
    return Payees(destinations=tuple(a.number for a in found), sources=sources)


def bad_positions(rows: int, bad_rows: int) -> dict[int, Flaw]:
    """Which rows (numbered from 1) are bad, spread evenly through the file, and how: each flaw in turn."""
    flaws = list(Flaw)
    return {(2 * i + 1) * rows // (2 * bad_rows) + 1: flaws[i % len(flaws)] for i in range(bad_rows)}


def sample_rows(payees: Payees, rows: int, seed: int, bad_rows: int) -> Iterator[tuple[dict[str, str], BadRow | None]]:
    """Each row in order, with what is wrong with it when it is one of the bad ones; lines as in a JSON Lines file."""
    bad = bad_positions(rows, bad_rows)
    for n in range(1, rows + 1):
        # Seeded per row, so that row n is the same payment for a given seed however many rows the file has.
        rng = random.Random(f"{seed}:{n}")
        fields = _payment(rng, payees, f"batch-{seed}-{n}")
        flaw = bad.get(n)
        if flaw is None:
            yield fields, None
        else:
            field = _spoil(fields, flaw, rng)
            yield fields, BadRow(n, field, flaw)


def write_sample(
    out: TextIO, file_format: FileFormat, payees: Payees, rows: int, seed: int, bad_rows: int
) -> list[BadRow]:
    """Write a sample file row by row; returns its bad rows, with their line numbers in that file."""
    generated = sample_rows(payees, rows, seed, bad_rows)
    if file_format is FileFormat.JSONL:
        return _write_jsonl(out, generated)
    return _write_csv(out, generated)


def _write_csv(out: TextIO, generated: Iterator[tuple[dict[str, str], BadRow | None]]) -> list[BadRow]:
    writer = csv.DictWriter(out, COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    bad: list[BadRow] = []
    for fields, flaw in generated:
        writer.writerow(fields)
        if flaw is not None:
            bad.append(BadRow(flaw.line + 1, flaw.field, flaw.flaw))  # the header is line 1
    return bad


def _write_jsonl(out: TextIO, generated: Iterator[tuple[dict[str, str], BadRow | None]]) -> list[BadRow]:
    bad: list[BadRow] = []
    for fields, flaw in generated:
        out.write(json.dumps(fields) + "\n")
        if flaw is not None:
            bad.append(flaw)
    return bad


def _payment(rng: random.Random, payees: Payees, reference: str) -> dict[str, str]:
    kind = rng.choices(_TYPES, _TYPE_WEIGHTS)[0]
    source = rng.choice(payees.sources) if payees.sources else None
    others = [number for number in payees.destinations if number != source]
    if (kind == "transfer" and not others) or (kind == "withdrawal" and source is None):
        kind = "deposit"
    fields = {"reference": reference, "type": kind}
    if kind == "deposit":
        fields["destination"] = rng.choice(payees.destinations)
        fields["amount"] = _amount(rng, 10, 2500)
    elif kind == "withdrawal":
        assert source is not None
        fields["source"] = source
        fields["amount"] = f"{rng.choice((10, 20, 20, 50, 50, 100, 200))}.00"
    else:
        assert source is not None
        fields["source"] = source
        fields["destination"] = rng.choice(others)
        fields["amount"] = _amount(rng, 5, 400)
    fields["currency"] = CURRENCY
    description = rng.choice(_DESCRIPTIONS[kind])
    if description:
        fields["description"] = description.format(n=rng.randint(1000, 9999))
    return fields


def _amount(rng: random.Random, low: int, high: int) -> str:
    pence = rng.randint(low * 100, high * 100)
    if rng.random() < 0.6:
        # People pay round sums (250.00, 12.50) more often than exact ones (47.83).
        pence -= pence % 50
    return f"{pence // 100}.{pence % 100:02d}"


def _spoil(fields: dict[str, str], flaw: Flaw, rng: random.Random) -> str:
    """Make one field of a valid row wrong in the way `flaw` says; returns that field's name."""
    if flaw is Flaw.MISTYPED_ACCOUNT:
        field = "destination" if "destination" in fields else "source"
        number = fields[field]
        fields[field] = number[:-1] + str((int(number[-1]) + 1) % 10)
        return field
    if flaw is Flaw.THREE_DECIMALS:
        fields["amount"] = f"{fields['amount']}{rng.randint(1, 9)}"
        return "amount"
    if flaw is Flaw.NEGATIVE_AMOUNT:
        fields["amount"] = f"-{fields['amount']}"
        return "amount"
    if flaw is Flaw.UNKNOWN_TYPE:
        fields["type"] = UNKNOWN_TYPE
        return "type"
    fields["type"] = "deposit"
    fields.pop("source", None)
    fields.pop("destination", None)
    return "destination"
