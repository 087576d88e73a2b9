"""Whether a database's schema is the one this code was written for: the newest Alembic revision."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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
