"""Held messages are one per task id and content, not per task id: a producer that reuses ids loses no hold.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:20:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Computed by PostgreSQL from what was held, so no writer can get it wrong; jsonb's text form is canonical.
    op.add_column(
        "held_messages",
        sa.Column(
            "content_digest",
            sa.String(length=32),
            sa.Computed("md5(task || ' ' || message::text)", persisted=True),
            nullable=False,
        ),
    )
    op.drop_constraint(op.f("uq_held_messages_task_id"), "held_messages", type_="unique")
    op.create_unique_constraint(op.f("uq_held_messages_task_id"), "held_messages", ["task_id", "content_digest"])


def downgrade() -> None:
    """Downgrade schema."""
    # The older schema holds one message per task id: later holds under a reused id are folded into the first.
    op.execute("DELETE FROM held_messages h USING held_messages o WHERE h.task_id = o.task_id AND h.id > o.id")
    op.drop_constraint(op.f("uq_held_messages_task_id"), "held_messages", type_="unique")
    op.create_unique_constraint(op.f("uq_held_messages_task_id"), "held_messages", ["task_id"])
    op.drop_column("held_messages", "content_digest")
