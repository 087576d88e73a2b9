"""Whether a worker can use a database: its schema at the newest Alembic revision, and its role allowed to record."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from processor.db.admin import alembic_config
from processor.db.engine import get_engine


def schema_problem(url: str) -> str | None:
    """Why the database at a URL cannot be used by this code, or None when its schema is at the newest revision."""
    scripts = ScriptDirectory.from_config(alembic_config(url))
    heads = set(scripts.get_heads())
    with get_engine(url).connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return None
    at = ", ".join(sorted(current)) or "none (the database has not been migrated)"
    if not current <= {script.revision for script in scripts.walk_revisions()}:
        return f"the database schema is at revision {at}, which this code does not know: it is older than the schema"
    return f"the database schema is at revision {at}, not {', '.join(sorted(heads))}: run `processor db upgrade`"


# What a worker writes: outcomes with their entries and conflicting attempts, balances, and holds. Any column will
# do: the worker role is granted UPDATE on the accounts' balance columns only.
WORKER_WRITES = {
    "transactions": "INSERT",
    "ledger_entries": "INSERT",
    "transaction_conflicts": "INSERT",
    "held_messages": "INSERT",
    "accounts": "UPDATE",
}


def privilege_problem(url: str) -> str | None:
    """Why the role a worker connects as cannot record outcomes and holds, or None when it can."""
    checks = " UNION ALL ".join(
        f"SELECT '{table}', '{privilege}', has_any_column_privilege('{table}', '{privilege}')"
        for table, privilege in WORKER_WRITES.items()
    )
    with get_engine(url).connect() as connection:
        role = connection.scalar(text("SELECT current_user"))
        missing = [
            f"{privilege} on {table}" for table, privilege, allowed in connection.execute(text(checks)) if not allowed
        ]
    if not missing:
        return None
    return f"the database role {role} may not record payments (no {', '.join(missing)}): connect as the worker role"
