"""The Alembic migrations, installed as the package processor.migrations (pyproject.toml maps it to this directory).

processor/db/admin.py finds them through the package, so `processor db upgrade` works from an installed copy;
alembic.ini names this directory for the `alembic` command run from the repository root.
"""
