"""A throwaway database with the processor's roles, named for this run so parallel runs never share them.

Roles are cluster-wide: each run makes its own four (abcbank_test_<random>_owner, ...) and drops them at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import sqlalchemy
from sqlalchemy.engine import make_url

from processor.cli import cli
from processor.db import admin
from processor.db.engine import get_engine, get_session_factory
from processor.db.roles import Kind, RoleNames
from processor.db.uow import UnitOfWork
from tests.clis import invoke_json
from tests.conftest import SERVER_URL, ThrowawayDatabases, setting

ROLE_SETTINGS = {kind: f"PROCESSOR_DB_{kind.value.upper()}_ROLE" for kind in Kind}
PASSWORD_VARIABLES = {kind: f"ABCBANK_{kind.value.upper()}_PASSWORD" for kind in Kind}


@dataclass(frozen=True)
class RoledDatabase:
    """A database whose objects the owner role owns, with the worker, operator and reader roles granted."""

    admin_url: str  # the test server's superuser, on this database
    names: RoleNames
    passwords: Mapping[Kind, str]

    def url(self, kind: Kind) -> str:
        """The database as a role connects to it, password and all (the test server trusts loopback anyway)."""
        return (
            make_url(self.admin_url)
            .set(username=self.names.of(kind), password=self.passwords[kind])
            .render_as_string(hide_password=False)
        )

    def uow(self, kind: Kind) -> UnitOfWork:
        return UnitOfWork(get_session_factory(self.url(kind)))

    def role_env(self) -> dict[str, str]:
        """The settings that name this run's roles."""
        return {ROLE_SETTINGS[kind]: self.names.of(kind) for kind in Kind}

    def env(self, kind: Kind, **more: str) -> dict[str, str]:
        """An environment for a process connecting as a role."""
        return {**os.environ, **self.role_env(), "DATABASE_URL": self.url(kind), **more}


@contextmanager
def settings(values: Mapping[str, str]) -> Iterator[None]:
    """Environment variables set for the settings while the block runs, then restored."""
    with ExitStack() as stack:
        for name, value in values.items():
            stack.enter_context(setting(name, value))
        yield


def fresh_role_names() -> RoleNames:
    suffix = uuid.uuid4().hex[:8]
    return RoleNames(*(f"abcbank_test_{suffix}_{kind.value}" for kind in Kind))


def drop_roles(names: RoleNames) -> None:
    engine = sqlalchemy.create_engine(SERVER_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            for kind in Kind:
                connection.execute(sqlalchemy.text(f'DROP ROLE IF EXISTS "{names.of(kind)}"'))
    finally:
        engine.dispose()


@contextmanager
def roled_database(databases: ThrowawayDatabases) -> Iterator[RoledDatabase]:
    """A database migrated by the superuser, as one from before the roles would be, then given to the roles by
    `processor db roles`; dropped, with the roles, at the end."""
    names = fresh_role_names()
    passwords = {kind: uuid.uuid4().hex for kind in Kind}
    url = databases.create("roles")
    database = RoledDatabase(url, names, passwords)
    try:
        admin.upgrade(url)
        env = {**database.role_env(), "DATABASE_URL": url}
        with settings({**env, **{PASSWORD_VARIABLES[kind]: passwords[kind] for kind in Kind}}):
            invoke_json(cli, "db", "roles")
        yield database
    finally:
        for kind in Kind:
            get_engine(database.url(kind)).dispose()
        databases.drop(url)
        drop_roles(names)
