"""Creating, dropping and migrating databases: used by `processor db`, the demo and the test suite."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, make_url


def migrations_directory() -> Path:
    """The Alembic scripts: the package processor.migrations, which is the repository's migrations/ in an editable
    install (pyproject.toml maps one to the other) and a copy in site-packages in an installed one."""
    scripts = resources.files("processor.migrations")
    if not isinstance(scripts, Path):  # a zipped install: Alembic reads its scripts from a directory
        raise RuntimeError(f"the migrations are not in a directory ({scripts}): install the package unzipped")
    return scripts


def alembic_config(url: str) -> Config:
    """Alembic's settings for migrating the database at a URL. No alembic.ini: an installed copy has none (that file
    is for the `alembic` command from the repository root, such as `alembic revision --autogenerate`)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    # ConfigParser treats % as interpolation; a password may contain one.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> str | None:
    """Migrate the database to a revision; returns the revision it is at."""
    command.upgrade(alembic_config(url), revision)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _server(url: URL) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )


def create_database(url: str) -> bool:
    """Create the database a URL names, unless it exists; True when it was created."""
    target = make_url(url)
    engine = _server(target)
    try:
        with engine.connect() as connection:
            exists = connection.scalar(
                sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            )
            if not exists:
                name = connection.dialect.identifier_preparer.quote(target.database or "")
                connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        return not exists
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    """Drop the database a URL names, disconnecting anyone still on it."""
    target = make_url(url)
    engine = _server(target)
    try:
        with engine.connect() as connection:
            name = connection.dialect.identifier_preparer.quote(target.database or "")
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        engine.dispose()
