"""Settlement slots: each currency's settlement side spread over several accounts, so no one row is hot.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from processor.domain.accounts import make_account_number

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here rather than read from the domain: this revision made 8 slots, whatever a later one makes.
SLOTS = 8


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column("accounts", sa.Column("settlement_slot", sa.SmallInteger(), server_default="0", nullable=False))
    op.create_check_constraint(
        op.f("ck_accounts_settlement_slot_range"),
        "accounts",
        f"settlement_slot >= 0 AND settlement_slot < {SLOTS} AND (type = 'settlement' OR settlement_slot = 0)",
    )
    op.drop_index(
        "uq_accounts_settlement_currency", table_name="accounts", postgresql_where=sa.text("type = 'settlement'")
    )
    op.create_index(
        "uq_accounts_settlement_currency_slot",
        "accounts",
        ["currency", "settlement_slot"],
        unique=True,
        postgresql_where=sa.text("type = 'settlement'"),
    )
    # The existing settlement account of each currency is slot 0; its siblings start at zero balance.
    connection = op.get_bind()
    currencies = connection.execute(sa.text("SELECT currency FROM accounts WHERE type = 'settlement'")).scalars()
    for currency in list(currencies):
        for slot in range(1, SLOTS):
            serial = connection.execute(sa.text("SELECT nextval('account_number_seq')")).scalar_one()
            connection.execute(
                sa.text(
                    "INSERT INTO accounts (number, type, status, currency, balance, overdraft_limit, settlement_slot)"
                    " VALUES (:number, 'settlement', 'active', :currency, 0, 0, :slot)"
                ),
                {"number": make_account_number(serial), "currency": currency, "slot": slot},
            )


def downgrade() -> None:
    """Downgrade schema."""
    # Fold every slot's balance back into slot 0 and re-point its entries and transactions, then drop the others.
    op.execute(
        """
        UPDATE accounts s0 SET balance = t.total
        FROM (SELECT currency, SUM(balance) AS total FROM accounts WHERE type = 'settlement' GROUP BY currency) t
        WHERE s0.type = 'settlement' AND s0.settlement_slot = 0 AND s0.currency = t.currency"""
    )
    for table, column in (
        ("ledger_entries", "account_id"),
        ("transactions", "source_account_id"),
        ("transactions", "destination_account_id"),
    ):
        op.execute(
            f"""
            UPDATE {table} x SET {column} = s0.id
            FROM accounts s, accounts s0
            WHERE x.{column} = s.id AND s.type = 'settlement' AND s.settlement_slot <> 0
              AND s0.type = 'settlement' AND s0.settlement_slot = 0 AND s0.currency = s.currency"""
        )
    op.execute(
        """
        UPDATE ledger_entries e SET balance_after = r.running
        FROM (SELECT e.id, SUM(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.id) AS running
              FROM ledger_entries e JOIN accounts a ON a.id = e.account_id WHERE a.type = 'settlement') r
        WHERE e.id = r.id AND e.balance_after <> r.running"""
    )
    op.execute("DELETE FROM accounts WHERE type = 'settlement' AND settlement_slot <> 0")
    op.drop_index(
        "uq_accounts_settlement_currency_slot",
        table_name="accounts",
        postgresql_where=sa.text("type = 'settlement'"),
    )
    op.create_index(
        "uq_accounts_settlement_currency",
        "accounts",
        ["currency"],
        unique=True,
        postgresql_where=sa.text("type = 'settlement'"),
    )
    op.drop_constraint(op.f("ck_accounts_settlement_slot_range"), "accounts", type_="check")
    op.drop_column("accounts", "settlement_slot")
