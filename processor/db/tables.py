"""The schema as SQLAlchemy sees it. Alembic migrations make it; `alembic check` keeps the two in step."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from processor.domain.accounts import SETTLEMENT_SLOTS, AccountStatus, AccountType
from processor.domain.held import HeldReason
from processor.domain.outcomes import OutcomeStatus, Reason
from processor.domain.requests import PaymentType
from processor.domain.users import Role

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(20, 2)


def _one_of(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


customer_number_seq = Sequence("customer_number_seq", start=100001)
account_number_seq = Sequence("account_number_seq", start=10000000)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    number: Mapped[int] = mapped_column(
        BigInteger, customer_number_seq, server_default=customer_number_seq.next_value(), unique=True
    )
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("email = lower(email)", name="email_lower_case"),
        # `customer list --search` matches any part of a name or an email address (ILIKE), through pg_trgm.
        Index("ix_customers_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_customers_email_trgm", "email", postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"}),
    )


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=AccountStatus.ACTIVE.value)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[Decimal] = mapped_column(Money, server_default="0")
    overdraft_limit: Mapped[Decimal] = mapped_column(Money, server_default="0")
    reward_points: Mapped[int] = mapped_column(BigInteger, server_default="0")
    settlement_slot: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(_one_of("type", AccountType), name="known_type"),
        CheckConstraint(_one_of("status", AccountStatus), name="known_status"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
        CheckConstraint("number ~ '^[0-9]{8,16}$'", name="number_digits"),
        CheckConstraint("(type = 'settlement') = (customer_id IS NULL)", name="settlement_has_no_customer"),
        CheckConstraint("overdraft_limit >= 0", name="overdraft_limit_not_negative"),
        CheckConstraint("type = 'standard' OR overdraft_limit = 0", name="overdraft_only_standard"),
        CheckConstraint("type = 'settlement' OR balance >= -overdraft_limit", name="balance_above_floor"),
        CheckConstraint("status <> 'closed' OR balance = 0", name="closed_is_empty"),
        CheckConstraint("reward_points >= 0", name="reward_points_not_negative"),
        CheckConstraint(
            f"settlement_slot >= 0 AND settlement_slot < {SETTLEMENT_SLOTS}"
            " AND (type = 'settlement' OR settlement_slot = 0)",
            name="settlement_slot_range",
        ),
        # SETTLEMENT_SLOTS settlement accounts per currency, created with the first customer account in it.
        Index(
            "uq_accounts_settlement_currency_slot",
            "currency",
            "settlement_slot",
            unique=True,
            postgresql_where=text("type = 'settlement'"),
        ),
    )


class TransactionRow(Base):
    """One row per reference: the request as received, its fingerprint, and its one outcome."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    destination: Mapped[str | None] = mapped_column(String(16))
    source_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    destination_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    errors: Mapped[list[str] | None] = mapped_column(JSONB)
    # A reversal names the transaction it reverses; "reversed by" is derived from it, never written on the original.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("reference ~ '^[A-Za-z0-9._:-]{1,64}$'", name="reference_format"),
        CheckConstraint(_one_of("type", PaymentType), name="known_type"),
        CheckConstraint(_one_of("status", (OutcomeStatus.APPLIED, OutcomeStatus.REJECTED)), name="known_status"),
        CheckConstraint(_one_of("reason", Reason), name="known_reason"),
        CheckConstraint("(status = 'applied') = (reason IS NULL)", name="reason_iff_rejected"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "status = 'rejected' OR (type IS NOT NULL AND amount IS NOT NULL AND currency IS NOT NULL)",
            name="applied_is_complete",
        ),
        # Keyset pages, newest first, walk (created_at, id); the savings monthly limit counts a locked account's
        # applied outgoing payments since the 1st through the source index.
        Index("ix_transactions_created_at_id", "created_at", "id"),
        Index("ix_transactions_source_account_id_created_at_id", "source_account_id", "created_at", "id"),
        Index("ix_transactions_destination_account_id_created_at_id", "destination_account_id", "created_at", "id"),
        # Rejections are few: listing them, of the ledger or of a busy account, walks only them.
        *(
            Index(f"ix_transactions_rejected_{name}", *columns, postgresql_where=text("status = 'rejected'"))
            for name, columns in (
                ("created_at_id", ("created_at", "id")),
                ("source_account_id_created_at_id", ("source_account_id", "created_at", "id")),
                ("destination_account_id_created_at_id", ("destination_account_id", "created_at", "id")),
            )
        ),
        # One applied reversal per original; rejected attempts may be many.
        Index(
            "uq_transactions_reverses_id_applied",
            "reverses_id",
            unique=True,
            postgresql_where=text("status = 'applied' AND reverses_id IS NOT NULL"),
        ),
        Index("ix_transactions_reverses_id", "reverses_id", postgresql_where=text("reverses_id IS NOT NULL")),
    )


class TransactionConflictRow(Base):
    """A later attempt of a reference with another payload. It had no effect; it is kept for operators."""

    __tablename__ = "transaction_conflicts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"))
    fields: Mapped[list[str]] = mapped_column(JSONB)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    # A redelivered conflicting message is the same attempt again: recorded once, however often it comes.
    __table_args__ = (UniqueConstraint("transaction_id", "fingerprint"),)


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal] = mapped_column(Money)
    balance_after: Mapped[Decimal] = mapped_column(Money)
    # Read at insert, under the account's row lock: an account's entries are in the same order by time as by id
    # (the transaction's start, now(), may come before a lock wait, and would not be).
    created_at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())

    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
        # A statement's range and its pages.
        Index("ix_ledger_entries_account_id_created_at_id", "account_id", "created_at", "id"),
    )


class AuditLogRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (Index("ix_audit_log_entity_type_entity_id", "entity_type", "entity", "id"),)


class HeldMessageRow(Base):
    """A message held for operators: no outcome could be recorded for it (see domain/held.py)."""

    __tablename__ = "held_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    reason: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(64), index=True)
    message: Mapped[dict[str, Any]] = mapped_column(JSONB)
    error: Mapped[str] = mapped_column(Text)
    content_digest: Mapped[str] = mapped_column(String(32), Computed("md5(task || ' ' || message::text)"))
    # An operator's actions on it (held messages are work items, not ledger: these are updated).
    resent_at: Mapped[datetime | None] = mapped_column()
    resends: Mapped[int] = mapped_column(Integer, server_default="0")
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(_one_of("reason", HeldReason), name="known_reason"),
        # A redelivered or retried message keeps its task id and content, so it is held once however often it
        # comes back; another message under a reused task id is held too.
        UniqueConstraint("task_id", "content_digest", name="uq_held_messages_task_id"),
        CheckConstraint(
            "(resolved_at IS NULL) = (resolved_by IS NULL) AND (resolved_at IS NULL) = (resolution IS NULL)",
            name="resolution_complete",
        ),
    )


class ApiTokenRow(Base):
    """A bearer token of the HTTP API, by the SHA-256 of its secret (the secret itself is shown once, never kept)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UserRow(Base):
    """Who may log in to the operator console; the password only as an Argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint(_one_of("role", Role), name="known_role"),)
