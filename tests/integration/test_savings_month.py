"""The savings monthly limit counts from midnight on the 1st in PROCESSOR_TIMEZONE, not in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from processor.domain.book import Policy
from tests.builders import UowFactory, make_account, pay, tamper
from tests.requests import withdrawal

TOKYO = ZoneInfo("Asia/Tokyo")  # UTC+9 all year: its month begins 9 hours before the UTC one


def month_start(now: datetime, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    return datetime(local.year, local.month, 1, tzinfo=zone)


def test_a_withdrawal_near_the_1st_counts_in_the_month_of_the_configured_zone(make_uow: UowFactory) -> None:
    savings = make_account(make_uow, type="savings", balance="100.00")
    in_tokyo = Policy(savings_monthly_outgoing_limit=1, zone=TOKYO)
    in_utc = Policy(savings_monthly_outgoing_limit=1, zone=UTC)
    (first,) = pay(make_uow, withdrawal(savings, "1.00"), policy=in_tokyo)
    with make_uow() as uow:
        now = uow.transactions.now()
    tokyo_start, utc_start = month_start(now, TOKYO), month_start(now, UTC)
    # A minute from the Tokyo month's start, on the side where the UTC month says otherwise: usually just after it
    # (this month in Tokyo, last month in UTC); in the 9 hours when Tokyo has turned the month and UTC has not,
    # just before it (last month in Tokyo, this month in UTC).
    counts_in_tokyo = tokyo_start < utc_start
    moment = tokyo_start + timedelta(minutes=1) if counts_in_tokyo else tokyo_start - timedelta(minutes=1)
    assert (moment >= tokyo_start) == counts_in_tokyo
    assert (moment >= utc_start) != counts_in_tokyo
    # The withdrawal made a minute from the month's start: a recorded outcome's time does not change otherwise.
    tamper(
        make_uow,
        "UPDATE transactions SET created_at = :at WHERE reference = :reference",
        at=moment,
        reference=first.reference,
    )

    (tokyo,) = pay(make_uow, withdrawal(savings, "1.00"), policy=in_tokyo)
    (utc,) = pay(make_uow, withdrawal(savings, "1.00"), policy=in_utc)

    limited = "withdrawal_limit_reached"
    assert (tokyo.reason, utc.reason) == ((limited, None) if counts_in_tokyo else (None, limited))
