"""Reading indexes for keyset pages, the reversal link, and held messages an operator resends or resolves.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REJECTED_INDEXES = {
    "ix_transactions_rejected_created_at_id": ["created_at", "id"],
    "ix_transactions_rejected_source_account_id_created_at_id": ["source_account_id", "created_at", "id"],
    "ix_transactions_rejected_destination_account_id_created_at_id": ["destination_account_id", "created_at", "id"],
}


def upgrade() -> None:
    """Upgrade schema."""
    # A reversal points at the transaction it reverses; "reversed by" is derived from this, so the original row is
    # never updated. One applied reversal per original; rejected attempts are kept, as many as there were.
    op.add_column("transactions", sa.Column("reverses_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_transactions_reverses_id_transactions"), "transactions", "transactions", ["reverses_id"], ["id"]
    )
    op.create_index(
        "uq_transactions_reverses_id_applied",
        "transactions",
        ["reverses_id"],
        unique=True,
        postgresql_where=sa.text("status = 'applied' AND reverses_id IS NOT NULL"),
    )
    op.create_index(
        "ix_transactions_reverses_id",
        "transactions",
        ["reverses_id"],
        unique=False,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )

    # Keyset pages, newest first: (created_at, id) in every order a listing walks. The account indexes replace
    # narrower ones (the savings limit's count uses the new source index as it used the old one).
    op.create_index("ix_transactions_created_at_id", "transactions", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_transactions_source_account_id_created_at_id",
        "transactions",
        ["source_account_id", "created_at", "id"],
        unique=False,
    )
    op.drop_index("ix_transactions_source_account_id_created_at", table_name="transactions")
    op.create_index(
        "ix_transactions_destination_account_id_created_at_id",
        "transactions",
        ["destination_account_id", "created_at", "id"],
        unique=False,
    )
    op.drop_index(op.f("ix_transactions_destination_account_id"), table_name="transactions")
    # Rejections are few among millions: an operator looking for them should not walk every applied payment,
    # of the whole ledger or of a busy account. Small indexes, written only for rejections.
    for name, columns in REJECTED_INDEXES.items():
        op.create_index(name, "transactions", columns, unique=False, postgresql_where=sa.text("status = 'rejected'"))

    # A statement's range and pages walk (created_at, id) of one account. Entries are written under the account's
    # row lock, so the clock read at insert (not the transaction's start, which may precede a lock wait) orders an
    # account's entries as their ids and running balances do.
    op.alter_column("ledger_entries", "created_at", server_default=sa.text("clock_timestamp()"))
    op.create_index(
        "ix_ledger_entries_account_id_created_at_id",
        "ledger_entries",
        ["account_id", "created_at", "id"],
        unique=False,
    )

    op.create_index("ix_audit_log_entity_type_entity_id", "audit_log", ["entity_type", "entity", "id"], unique=False)
    op.drop_index("ix_audit_log_entity_type_entity", table_name="audit_log")

    # Search by any part of a name or an email address (ILIKE '%...%') through trigram indexes. pg_trgm is a
    # trusted extension: a database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_customers_name_trgm",
        "customers",
        ["name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_customers_email_trgm",
        "customers",
        ["email"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )

    # Held messages are operators' work items, not ledger: a resend and a resolution are noted on the row.
    op.add_column("held_messages", sa.Column("resent_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("held_messages", sa.Column("resends", sa.Integer(), server_default="0", nullable=False))
    op.add_column("held_messages", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("held_messages", sa.Column("resolved_by", sa.Text(), nullable=True))
    op.add_column("held_messages", sa.Column("resolution", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_held_messages_resolution_complete"),
        "held_messages",
        "(resolved_at IS NULL) = (resolved_by IS NULL) AND (resolved_at IS NULL) = (resolution IS NULL)",
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_constraint(op.f("ck_held_messages_resolution_complete"), "held_messages", type_="check")
    for column in ("resolution", "resolved_by", "resolved_at", "resends", "resent_at"):
        op.drop_column("held_messages", column)
    # The extension stays: it is database-wide, and something else may use it.
    op.drop_index("ix_customers_email_trgm", table_name="customers", postgresql_using="gin")
    op.drop_index("ix_customers_name_trgm", table_name="customers", postgresql_using="gin")
    op.create_index("ix_audit_log_entity_type_entity", "audit_log", ["entity_type", "entity"], unique=False)
    op.drop_index("ix_audit_log_entity_type_entity_id", table_name="audit_log")
    op.drop_index("ix_ledger_entries_account_id_created_at_id", table_name="ledger_entries")
    op.alter_column("ledger_entries", "created_at", server_default=sa.text("now()"))
    for name in REJECTED_INDEXES:
        op.drop_index(name, table_name="transactions", postgresql_where=sa.text("status = 'rejected'"))
    op.create_index(
        op.f("ix_transactions_destination_account_id"), "transactions", ["destination_account_id"], unique=False
    )
    op.drop_index("ix_transactions_destination_account_id_created_at_id", table_name="transactions")
    op.create_index(
        "ix_transactions_source_account_id_created_at",
        "transactions",
        ["source_account_id", "created_at"],
        unique=False,
    )
    op.drop_index("ix_transactions_source_account_id_created_at_id", table_name="transactions")
    op.drop_index("ix_transactions_created_at_id", table_name="transactions")
    op.drop_index(
        "ix_transactions_reverses_id", table_name="transactions", postgresql_where=sa.text("reverses_id IS NOT NULL")
    )
    op.drop_index(
        "uq_transactions_reverses_id_applied",
        table_name="transactions",
        postgresql_where=sa.text("status = 'applied' AND reverses_id IS NOT NULL"),
    )
    op.drop_constraint(op.f("fk_transactions_reverses_id_transactions"), "transactions", type_="foreignkey")
    op.drop_column("transactions", "reverses_id")
