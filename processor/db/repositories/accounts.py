"""Accounts: numbers from a sequence, balances locked in id order."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import AccountRow, CustomerRow, account_number_seq
from processor.domain.accounts import SETTLEMENT_SLOTS, Account, AccountStatus, AccountType, make_account_number

_ACCOUNT_COLUMNS = (
    AccountRow.id,
    AccountRow.number,
    CustomerRow.number.label("customer"),
    AccountRow.type,
    AccountRow.status,
    AccountRow.currency,
    AccountRow.balance,
    AccountRow.overdraft_limit,
    AccountRow.reward_points,
    AccountRow.settlement_slot,
)


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        number=row.number,
        customer=row.customer,
        type=AccountType(row.type),
        status=AccountStatus(row.status),
        currency=row.currency,
        balance=row.balance,
        overdraft_limit=row.overdraft_limit,
        reward_points=row.reward_points,
        settlement_slot=row.settlement_slot,
    )


def _select_accounts() -> Any:
    return select(*_ACCOUNT_COLUMNS).outerjoin(CustomerRow, AccountRow.customer_id == CustomerRow.id)


_UPDATE_BALANCES = text(
    """
    UPDATE accounts AS a SET balance = v.balance, reward_points = v.reward_points
    FROM unnest(CAST(:id AS bigint[]), CAST(:balance AS numeric[]), CAST(:reward_points AS bigint[]))
         AS v(id, balance, reward_points)
    WHERE a.id = v.id"""
)


class AccountRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        customer_id: int | None,
        type: AccountType,
        currency: str,
        overdraft_limit: Decimal,
    ) -> str:
        number = self._next_number()
        self.session.execute(
            insert(AccountRow).values(
                number=number,
                customer_id=customer_id,
                type=type.value,
                currency=currency,
                overdraft_limit=overdraft_limit,
            )
        )
        return number

    def _next_number(self) -> str:
        return make_account_number(self.session.execute(account_number_seq.next_value()).scalar_one())

    def ensure_settlement(self, currency: str) -> None:
        """Create the currency's settlement accounts, unless they exist (race-free: the unique index decides)."""
        existing = set(
            self.session.scalars(
                select(AccountRow.settlement_slot).where(
                    AccountRow.type == AccountType.SETTLEMENT, AccountRow.currency == currency
                )
            )
        )
        for slot in sorted(set(range(SETTLEMENT_SLOTS)) - existing):
            self.session.execute(
                pg_insert(AccountRow)
                .values(
                    number=self._next_number(),
                    type=AccountType.SETTLEMENT.value,
                    currency=currency,
                    settlement_slot=slot,
                )
                .on_conflict_do_nothing(
                    index_elements=[AccountRow.currency, AccountRow.settlement_slot],
                    index_where=text("type = 'settlement'"),
                )
            )

    def get_by_number(self, number: str) -> Account | None:
        row = self.session.execute(_select_accounts().where(AccountRow.number == number)).one_or_none()
        return None if row is None else _account(row)

    def list_for_customer(self, customer: int) -> list[Account]:
        rows = self.session.execute(_select_accounts().where(CustomerRow.number == customer).order_by(AccountRow.id))
        return [_account(row) for row in rows]

    def get_for_update(self, numbers: Collection[str], settlements: Collection[tuple[str, int]] = ()) -> list[Account]:
        """Lock the named accounts and the settlement accounts (currency, slot), in id order."""
        if not numbers and not settlements:
            return []
        # One statement, rows locked in id order: two payments touching the same accounts always queue for
        # them in the same order, so opposite transfers wait for each other instead of deadlocking.
        query = (
            _select_accounts()
            .where(
                or_(
                    AccountRow.number.in_(numbers),
                    (AccountRow.type == AccountType.SETTLEMENT)
                    & tuple_(AccountRow.currency, AccountRow.settlement_slot).in_(list(settlements)),
                )
            )
            .order_by(AccountRow.id)
            # FOR NO KEY UPDATE: a payment changes balances, never keys, so rows that merely reference
            # these accounts (new ledger entries, say) need not wait for it.
            .with_for_update(of=AccountRow, key_share=True)
        )
        return [_account(row) for row in self.session.execute(query)]

    def save_balances(self, accounts: Collection[Account]) -> None:
        """Write the balances and reward points of changed accounts, all in one statement."""
        if accounts:
            self.session.execute(
                _UPDATE_BALANCES,
                {
                    "id": [a.id for a in accounts],
                    "balance": [a.balance for a in accounts],
                    "reward_points": [a.reward_points for a in accounts],
                },
            )

    def set_status(self, account_id: int, status: AccountStatus) -> None:
        self.session.execute(update(AccountRow).where(AccountRow.id == account_id).values(status=status.value))

    def page(
        self,
        limit: int,
        customer: int | None = None,
        type: AccountType | None = None,
        status: AccountStatus | None = None,
        after: int | None = None,
    ) -> list[Account]:
        """Up to `limit` accounts in the order they were opened, after an account's id; filters all optional."""
        query = _select_accounts()
        if customer is not None:
            query = query.where(CustomerRow.number == customer)
        if type is not None:
            query = query.where(AccountRow.type == type.value)
        else:
            query = query.where(AccountRow.type != AccountType.SETTLEMENT.value)
        if status is not None:
            query = query.where(AccountRow.status == status.value)
        if after is not None:
            query = query.where(AccountRow.id > after)
        return [_account(row) for row in self.session.execute(query.order_by(AccountRow.id).limit(limit))]
