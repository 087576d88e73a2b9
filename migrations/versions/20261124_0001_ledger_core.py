"""Ledger core: customers, accounts, transactions (one per reference), double-entry ledger, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 13:05:55.331608

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Customer and account numbers come from their own sequences (account numbers then get a check digit).
    op.execute(sa.schema.CreateSequence(sa.Sequence("customer_number_seq", start=100001)))
    op.execute(sa.schema.CreateSequence(sa.Sequence("account_number_seq", start=10000000)))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_entity_type_entity", "audit_log", ["entity_type", "entity"], unique=False)
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("number", sa.BigInteger(), server_default=sa.text("nextval('customer_number_seq')"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_customers_email_lower_case")),
        sa.CheckConstraint("length(name) BETWEEN 1 AND 200", name=op.f("ck_customers_name_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
        sa.UniqueConstraint("number", name=op.f("uq_customers_number")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("balance", sa.Numeric(precision=20, scale=2), server_default="0", nullable=False),
        sa.Column("overdraft_limit", sa.Numeric(precision=20, scale=2), server_default="0", nullable=False),
        sa.Column("reward_points", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "(type = 'settlement') = (customer_id IS NULL)", name=op.f("ck_accounts_settlement_has_no_customer")
        ),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_accounts_currency_code")),
        sa.CheckConstraint("number ~ '^[0-9]{8,16}$'", name=op.f("ck_accounts_number_digits")),
        sa.CheckConstraint("status <> 'closed' OR balance = 0", name=op.f("ck_accounts_closed_is_empty")),
        sa.CheckConstraint(
            "status IN ('active', 'dormant', 'outgoing_blocked', 'incoming_blocked', 'frozen', 'closed')",
            name=op.f("ck_accounts_known_status"),
        ),
        sa.CheckConstraint(
            "type = 'settlement' OR balance >= -overdraft_limit", name=op.f("ck_accounts_balance_above_floor")
        ),
        sa.CheckConstraint(
            "type = 'standard' OR overdraft_limit = 0", name=op.f("ck_accounts_overdraft_only_standard")
        ),
        sa.CheckConstraint(
            "type IN ('standard', 'savings', 'reward', 'settlement')", name=op.f("ck_accounts_known_type")
        ),
        sa.CheckConstraint("overdraft_limit >= 0", name=op.f("ck_accounts_overdraft_limit_not_negative")),
        sa.CheckConstraint("reward_points >= 0", name=op.f("ck_accounts_reward_points_not_negative")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_accounts_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("number", name=op.f("uq_accounts_number")),
    )
    op.create_index(op.f("ix_accounts_customer_id"), "accounts", ["customer_id"], unique=False)
    op.create_index(
        "uq_accounts_settlement_currency",
        "accounts",
        ["currency"],
        unique=True,
        postgresql_where=sa.text("type = 'settlement'"),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("destination", sa.String(length=16), nullable=True),
        sa.Column("source_account_id", sa.BigInteger(), nullable=True),
        sa.Column("destination_account_id", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=20, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("errors", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(status = 'applied') = (reason IS NULL)", name=op.f("ck_transactions_reason_iff_rejected")),
        sa.CheckConstraint(
            "reason IN ('invalid_request', 'same_account', 'account_not_found', 'currency_mismatch', 'account_closed', 'outgoing_blocked', 'incoming_blocked', 'withdrawal_limit_reached', 'insufficient_funds')",
            name=op.f("ck_transactions_known_reason"),
        ),
        sa.CheckConstraint("reference ~ '^[A-Za-z0-9._:-]{1,64}$'", name=op.f("ck_transactions_reference_format")),
        sa.CheckConstraint(
            "status = 'rejected' OR (type IS NOT NULL AND amount IS NOT NULL AND currency IS NOT NULL)",
            name=op.f("ck_transactions_applied_is_complete"),
        ),
        sa.CheckConstraint("status IN ('applied', 'rejected')", name=op.f("ck_transactions_known_status")),
        sa.CheckConstraint("type IN ('deposit', 'withdrawal', 'transfer')", name=op.f("ck_transactions_known_type")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transactions_amount_positive")),
        sa.ForeignKeyConstraint(
            ["destination_account_id"], ["accounts.id"], name=op.f("fk_transactions_destination_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["source_account_id"], ["accounts.id"], name=op.f("fk_transactions_source_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint("reference", name=op.f("uq_transactions_reference")),
    )
    op.create_index(
        op.f("ix_transactions_destination_account_id"), "transactions", ["destination_account_id"], unique=False
    )
    op.create_index(
        "ix_transactions_source_account_id_created_at",
        "transactions",
        ["source_account_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("balance_after", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_entries_amount_not_zero")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_ledger_entries_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["transactions.id"], name=op.f("fk_ledger_entries_transaction_id_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"], unique=False)
    op.create_index(op.f("ix_ledger_entries_transaction_id"), "ledger_entries", ["transaction_id"], unique=False)
    op.create_table(
        "transaction_conflicts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("fields", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["transactions.id"], name=op.f("fk_transaction_conflicts_transaction_id_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transaction_conflicts")),
        sa.UniqueConstraint("transaction_id", "fingerprint", name=op.f("uq_transaction_conflicts_transaction_id")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("transaction_conflicts")
    op.drop_index(op.f("ix_ledger_entries_transaction_id"), table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_account_id_id", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_index("ix_transactions_source_account_id_created_at", table_name="transactions")
    op.drop_index(op.f("ix_transactions_destination_account_id"), table_name="transactions")
    op.drop_table("transactions")
    op.drop_index(
        "uq_accounts_settlement_currency", table_name="accounts", postgresql_where=sa.text("type = 'settlement'")
    )
    op.drop_index(op.f("ix_accounts_customer_id"), table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("customers")
    op.drop_index("ix_audit_log_entity_type_entity", table_name="audit_log")
    op.drop_table("audit_log")
    op.execute(sa.schema.DropSequence(sa.Sequence("account_number_seq")))
    op.execute(sa.schema.DropSequence(sa.Sequence("customer_number_seq")))
