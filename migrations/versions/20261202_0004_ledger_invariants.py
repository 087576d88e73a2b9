"""Ledger invariants enforced by the database itself (placeholder, filled in by the invariants work).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 15:40:00.000000

"""

from collections.abc import Sequence

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""


def downgrade() -> None:
    """Downgrade schema."""
