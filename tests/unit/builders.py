"""Domain values with defaults, for tests that need no database."""

from __future__ import annotations

import itertools
from decimal import Decimal

from processor.domain.accounts import Account, AccountStatus, AccountType, make_account_number

_ids = itertools.count(1)


def account(
    type: str = "standard",
    balance: str = "0.00",
    status: str = "active",
    overdraft_limit: str = "0.00",
    currency: str = "GBP",
    reward_points: int = 0,
    settlement_slot: int = 0,
) -> Account:
    id = next(_ids)
    return Account(
        id=id,
        number=make_account_number(10000000 + id),
        customer=None if type == "settlement" else 100001,
        type=AccountType(type),
        status=AccountStatus(status),
        currency=currency,
        balance=Decimal(balance),
        overdraft_limit=Decimal(overdraft_limit),
        reward_points=reward_points,
        settlement_slot=settlement_slot,
    )
