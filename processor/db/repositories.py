"""Repositories: one per aggregate, 2.0-style statements, never a commit (the unit of work owns that)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from processor.db.tables import (
    AccountRow,
    AuditLogRow,
    CustomerRow,
    HeldMessageRow,
    LedgerEntryRow,
    TransactionConflictRow,
    TransactionRow,
    account_number_seq,
)
from processor.domain.accounts import (
    Account,
    AccountStatus,
    AccountType,
    Customer,
    make_account_number,
)
from processor.domain.held import HeldMessage, HeldReason
from processor.domain.ledger import StatementEntry, Violation
from processor.domain.payments import Conflict, OutcomeStatus, Posting, Reason, Recorded


class CustomerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str, email: str) -> Customer | None:
        """Insert a customer; None when the email is taken (race-free: the unique index decides)."""
        row = self.session.execute(
            pg_insert(CustomerRow)
            .values(name=name, email=email)
            .on_conflict_do_nothing(index_elements=[CustomerRow.email])
            .returning(CustomerRow.number, CustomerRow.name, CustomerRow.email)
        ).one_or_none()
        return None if row is None else Customer(row.number, row.name, row.email)

    def get_by_number(self, number: int) -> Customer | None:
        row = self.session.execute(
            select(CustomerRow.number, CustomerRow.name, CustomerRow.email).where(CustomerRow.number == number)
        ).one_or_none()
        return None if row is None else Customer(row.number, row.name, row.email)

    def get_id_by_number(self, number: int) -> int | None:
        return self.session.scalar(select(CustomerRow.id).where(CustomerRow.number == number))


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
    )


def _select_accounts() -> Any:
    return select(*_ACCOUNT_COLUMNS).outerjoin(CustomerRow, AccountRow.customer_id == CustomerRow.id)


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
        exists = self.session.scalar(
            select(AccountRow.id).where(AccountRow.type == AccountType.SETTLEMENT, AccountRow.currency == currency)
        )
        if exists is None:
            number = self._next_number()
            self.session.execute(
                pg_insert(AccountRow)
                .values(number=number, type=AccountType.SETTLEMENT.value, currency=currency)
                .on_conflict_do_nothing(index_elements=[AccountRow.currency], index_where=text("type = 'settlement'"))
            )

    def get_by_number(self, number: str) -> Account | None:
        row = self.session.execute(_select_accounts().where(AccountRow.number == number)).one_or_none()
        return None if row is None else _account(row)

    def list_for_customer(self, customer: int) -> list[Account]:
        rows = self.session.execute(_select_accounts().where(CustomerRow.number == customer).order_by(AccountRow.id))
        return [_account(row) for row in rows]

    def get_for_update(self, numbers: Collection[str], settlement_currencies: Collection[str] = ()) -> list[Account]:
        """Lock the named accounts and the settlement accounts of the currencies, in id order."""
        if not numbers and not settlement_currencies:
            return []
        # One statement, rows locked in id order: two payments touching the same accounts always queue for
        # them in the same order, so opposite transfers wait for each other instead of deadlocking.
        query = (
            _select_accounts()
            .where(
                or_(
                    AccountRow.number.in_(numbers),
                    (AccountRow.type == AccountType.SETTLEMENT) & AccountRow.currency.in_(settlement_currencies),
                )
            )
            .order_by(AccountRow.id)
            # FOR NO KEY UPDATE: a payment changes balances, never keys, so rows that merely reference
            # these accounts (new ledger entries, say) need not wait for it.
            .with_for_update(of=AccountRow, key_share=True)
        )
        return [_account(row) for row in self.session.execute(query)]

    def save_balances(self, accounts: Iterable[Account]) -> None:
        params = [{"id": a.id, "balance": a.balance, "reward_points": a.reward_points} for a in accounts]
        if params:
            self.session.execute(update(AccountRow), params)

    def set_status(self, account_id: int, status: AccountStatus) -> None:
        self.session.execute(update(AccountRow).where(AccountRow.id == account_id).values(status=status.value))

    def statement(self, account_id: int) -> list[StatementEntry]:
        rows = self.session.execute(
            select(
                TransactionRow.reference,
                LedgerEntryRow.amount,
                LedgerEntryRow.balance_after,
                LedgerEntryRow.created_at,
            )
            .join(TransactionRow, LedgerEntryRow.transaction_id == TransactionRow.id)
            .where(LedgerEntryRow.account_id == account_id)
            .order_by(LedgerEntryRow.id)
        )
        return [StatementEntry(r.reference, r.amount, r.balance_after, r.created_at) for r in rows]


@dataclass(frozen=True)
class NewTransaction:
    recorded: Recorded
    type: str | None = None
    source: str | None = None
    destination: str | None = None
    source_account_id: int | None = None
    destination_account_id: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    description: str | None = None
    postings: tuple[Posting, ...] = ()


class TransactionRepository:
    # The first key of PostgreSQL's two-key advisory locks, so these never collide with another user's.
    LOCK_NAMESPACE = 0x0ABC

    def __init__(self, session: Session) -> None:
        self.session = session

    def now(self) -> datetime:
        """The transaction's own timestamp, the same on every host."""
        return self.session.execute(select(func.now())).scalar_one()

    def lock_references(self, references: Collection[str]) -> None:
        """Hold each reference until commit, so racing deliveries of one reference apply one at a time."""
        if not references:
            return
        # Sorted, and taken by the subquery's order: two batches sharing references cannot wait on each other
        # in a cycle. A hash collision only makes two references queue behind each other.
        self.session.execute(
            text(
                "SELECT pg_advisory_xact_lock(:namespace, k) FROM (SELECT DISTINCT hashtext(r) AS k"
                " FROM unnest(CAST(:refs AS text[])) AS r ORDER BY k OFFSET 0) AS keys"
            ),
            {"namespace": self.LOCK_NAMESPACE, "refs": list(references)},
        )

    def get_by_references(self, references: Collection[str]) -> dict[str, Recorded]:
        if not references:
            return {}
        rows = self.session.execute(
            select(
                TransactionRow.id,
                TransactionRow.reference,
                TransactionRow.status,
                TransactionRow.reason,
                TransactionRow.payload,
                TransactionRow.fingerprint,
                TransactionRow.errors,
            ).where(TransactionRow.reference.in_(references))
        ).all()
        conflicts = self._conflicts([r.id for r in rows])
        return {
            r.reference: Recorded(
                id=r.id,
                reference=r.reference,
                status=OutcomeStatus(r.status),
                reason=None if r.reason is None else Reason(r.reason),
                payload=r.payload,
                fingerprint=r.fingerprint,
                errors=tuple(r.errors or ()),
                conflicts=tuple(conflicts.get(r.id, ())),
            )
            for r in rows
        }

    def _conflicts(self, transaction_ids: Sequence[int]) -> dict[int, list[Conflict]]:
        found: dict[int, list[Conflict]] = {}
        if not transaction_ids:
            return found
        rows = self.session.execute(
            select(
                TransactionConflictRow.transaction_id,
                TransactionConflictRow.fields,
                TransactionConflictRow.payload,
                TransactionConflictRow.fingerprint,
                TransactionConflictRow.created_at,
            )
            .where(TransactionConflictRow.transaction_id.in_(transaction_ids))
            .order_by(TransactionConflictRow.id)
        )
        for r in rows:
            found.setdefault(r.transaction_id, []).append(
                Conflict(tuple(r.fields), r.payload, r.fingerprint, r.created_at)
            )
        return found

    def add_all(self, transactions: Sequence[NewTransaction]) -> dict[str, int]:
        """Insert the transactions; returns their ids by reference."""
        if not transactions:
            return {}
        rows = self.session.execute(
            insert(TransactionRow).returning(TransactionRow.reference, TransactionRow.id, sort_by_parameter_order=True),
            [
                {
                    "reference": t.recorded.reference,
                    "type": t.type,
                    "source": t.source,
                    "destination": t.destination,
                    "source_account_id": t.source_account_id,
                    "destination_account_id": t.destination_account_id,
                    "amount": t.amount,
                    "currency": t.currency,
                    "description": t.description,
                    "payload": dict(t.recorded.payload),
                    "fingerprint": t.recorded.fingerprint,
                    "status": t.recorded.status.value,
                    "reason": None if t.recorded.reason is None else t.recorded.reason.value,
                    "errors": list(t.recorded.errors) or None,
                }
                for t in transactions
            ],
        )
        return {r.reference: r.id for r in rows}

    def add_conflicts(self, conflicts: Sequence[tuple[int, Conflict]]) -> None:
        if conflicts:
            self.session.execute(
                insert(TransactionConflictRow),
                [
                    {
                        "transaction_id": tid,
                        "fields": list(c.fields),
                        "payload": dict(c.payload),
                        "fingerprint": c.fingerprint,
                    }
                    for tid, c in conflicts
                ],
            )

    def count_outgoing_since(self, account_ids: Collection[int], since: datetime) -> dict[int, int]:
        """Applied outgoing payments per account since a moment (the savings monthly limit)."""
        if not account_ids:
            return {}
        rows = self.session.execute(
            select(TransactionRow.source_account_id, func.count())
            .where(
                TransactionRow.source_account_id.in_(account_ids),
                TransactionRow.created_at >= since,
                TransactionRow.status == OutcomeStatus.APPLIED,
            )
            .group_by(TransactionRow.source_account_id)
        )
        return {account_id: count for account_id, count in rows if account_id is not None}

    def add_entries(self, transactions: Sequence[NewTransaction], ids: dict[str, int]) -> None:
        """Write each transaction's postings as ledger entries; `ids` maps references to transaction ids."""
        rows = [
            {
                "transaction_id": ids[t.recorded.reference],
                "account_id": p.account_id,
                "amount": p.amount,
                "balance_after": p.balance_after,
            }
            for t in transactions
            for p in t.postings
        ]
        if rows:
            self.session.execute(insert(LedgerEntryRow), rows)


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, actor: str, action: str, entity_type: str, entity: str, **details: Any) -> None:
        self.session.execute(
            insert(AuditLogRow).values(
                actor=actor, action=action, entity_type=entity_type, entity=entity, details=details
            )
        )

    def for_entity(self, entity_type: str, entity: str) -> list[Row[Any]]:
        return list(
            self.session.execute(
                select(AuditLogRow.at, AuditLogRow.actor, AuditLogRow.action, AuditLogRow.details)
                .where(AuditLogRow.entity_type == entity_type, AuditLogRow.entity == entity)
                .order_by(AuditLogRow.id)
            )
        )


class HeldMessageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, held: HeldMessage) -> int:
        """The held message's id; the one already held when its task id is known, so each is held once."""
        held_id = self.session.execute(
            pg_insert(HeldMessageRow)
            .values(
                reason=held.reason.value,
                task=held.task,
                task_id=held.task_id,
                reference=held.reference,
                message=dict(held.message),
                error=held.error,
            )
            .on_conflict_do_nothing(index_elements=[HeldMessageRow.task_id])
            .returning(HeldMessageRow.id)
        ).scalar_one_or_none()
        if held_id is None:
            held_id = self.session.scalars(
                select(HeldMessageRow.id).where(HeldMessageRow.task_id == held.task_id)
            ).one()
        return held_id

    def latest(self, limit: int) -> list[HeldMessage]:
        rows = self.session.scalars(select(HeldMessageRow).order_by(HeldMessageRow.id.desc()).limit(limit))
        return [
            HeldMessage(
                reason=HeldReason(row.reason),
                task=row.task,
                task_id=row.task_id,
                reference=row.reference,
                message=row.message,
                error=row.error,
                id=row.id,
                at=row.at,
            )
            for row in reversed(list(rows))
        ]


# Each check returns rows that break one invariant of the ledger; an empty result is a pass.
_INVARIANTS: dict[str, str] = {
    "balance_equals_entries": """
        SELECT a.number, a.balance, COALESCE(SUM(e.amount), 0) AS entries
        FROM accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id
        GROUP BY a.id HAVING a.balance <> COALESCE(SUM(e.amount), 0)""",
    "balance_after_is_running_total": """
        SELECT number, entry, balance_after, running FROM (
            SELECT a.number, e.id AS entry, e.balance_after,
                   SUM(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
            FROM ledger_entries e JOIN accounts a ON a.id = e.account_id) t
        WHERE balance_after <> running""",
    "transaction_entries_sum_to_zero": """
        SELECT t.reference, SUM(e.amount) AS total
        FROM transactions t JOIN ledger_entries e ON e.transaction_id = t.id
        GROUP BY t.id HAVING SUM(e.amount) <> 0""",
    "applied_has_entries": """
        SELECT t.reference FROM transactions t
        WHERE t.status = 'applied'
          AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "rejected_has_no_entries": """
        SELECT t.reference FROM transactions t
        WHERE t.status = 'rejected'
          AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.id)""",
    "balance_above_floor": """
        SELECT number, type, balance, overdraft_limit FROM accounts
        WHERE type <> 'settlement'
          AND balance < CASE WHEN type = 'standard' THEN -overdraft_limit ELSE 0 END""",
    "balances_sum_to_zero": """
        SELECT currency, SUM(balance) AS total FROM accounts
        GROUP BY currency HAVING SUM(balance) <> 0""",
}


class LedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find_violations(self) -> list[Violation]:
        found = []
        for check, query in _INVARIANTS.items():
            for row in self.session.execute(text(query)).mappings():
                found.append(Violation(check, {key: str(value) for key, value in row.items()}))
        return found
