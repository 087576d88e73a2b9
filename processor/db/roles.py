"""The database roles the processor's programs connect as, and what each may do (README, "Database roles").

The owner owns the schema and runs the migrations. The worker, the operator CLI and `submit` each connect as a role
granted only what their code needs, table by table, so that a compromised or buggy worker cannot delete ledger
entries, rewrite outcomes or change the schema. Grants are re-applied after every migration (`processor db
upgrade`): a table added later is reachable by no restricted role until this file says what each may do with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import psycopg2.extensions  # type: ignore[import-untyped]  # no stubs; one function used
import sqlalchemy
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from processor.domain.errors import ProcessorError


class Kind(StrEnum):
    OWNER = "owner"
    WORKER = "worker"
    OPERATOR = "operator"
    READER = "reader"


RESTRICTED = (Kind.WORKER, Kind.OPERATOR, Kind.READER)

# What each restricted role may do, by table. Every table is named for every role, so that a new table is a decision
# (tests/integration/test_roles.py fails until it is made here); an empty string grants nothing.
# Locking rows (SELECT ... FOR NO KEY UPDATE) needs UPDATE on at least one column, which the column grants give.
TABLE_GRANTS: dict[Kind, dict[str, str]] = {
    # apply_payments and the holds (processor/services/payments.py, held.py): it locks and reads accounts, moves
    # only their balances and reward points, and appends transactions, entries, conflicts and held messages. Never
    # UPDATE or DELETE of what it recorded. Customers: only the columns the account query joins on.
    Kind.WORKER: {
        "accounts": "SELECT, UPDATE (balance, reward_points)",
        "customers": "SELECT (id, number)",
        "transactions": "SELECT, INSERT",
        "transaction_conflicts": "SELECT, INSERT",
        "ledger_entries": "SELECT, INSERT",
        "held_messages": "SELECT, INSERT",
        "audit_log": "",
        "api_tokens": "",
        "users": "",
        "alembic_version": "SELECT",
    },
    # The operator CLI (processor/cli.py): registers customers, opens accounts (and the settlement accounts),
    # changes an account's status, writes the audit log, and reads everything for show, statement, verify, held.
    Kind.OPERATOR: {
        "accounts": "SELECT, INSERT, UPDATE (status)",
        "customers": "SELECT, INSERT",
        "transactions": "SELECT",
        "transaction_conflicts": "SELECT",
        "ledger_entries": "SELECT",
        "held_messages": "SELECT",
        "audit_log": "SELECT, INSERT",
        # api-token create, list and revoke; the HTTP API (processor/web), which connects as this role, reads them.
        "api_tokens": "SELECT, INSERT, UPDATE (revoked_at)",
        # processor user create, and the console's login (which runs as this role).
        "users": "SELECT, INSERT",
        "alembic_version": "SELECT",
    },
    # submit (submit/): outcomes and their conflicts by reference, and the demo customers' accounts for `generate`.
    Kind.READER: {
        "accounts": "SELECT",
        "customers": "SELECT",
        "transactions": "SELECT",
        "transaction_conflicts": "SELECT",
        "ledger_entries": "",
        "held_messages": "",
        "audit_log": "",
        "api_tokens": "",
        "users": "",
        "alembic_version": "SELECT",
    },
}

# The sequences behind the ids and numbers of the rows each role inserts (nextval needs USAGE).
SEQUENCE_GRANTS: dict[Kind, tuple[str, ...]] = {
    Kind.WORKER: (
        "transactions_id_seq",
        "transaction_conflicts_id_seq",
        "ledger_entries_id_seq",
        "held_messages_id_seq",
    ),
    Kind.OPERATOR: (
        "customers_id_seq",
        "customer_number_seq",
        "accounts_id_seq",
        "account_number_seq",
        "audit_log_id_seq",
        "api_tokens_id_seq",
        "users_id_seq",
    ),
    Kind.READER: (),
}

# A login role that can do nothing beyond its grants: no superuser, no creating roles or databases, no replication,
# no bypassing row security.
_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RoleError(ProcessorError):
    """The roles cannot be created or granted as asked; the message says why and what to do."""


class PasswordsMissing(RoleError):
    """Roles that do not exist yet and were given no password: nothing was changed."""

    def __init__(self, kinds: list[Kind], names: RoleNames) -> None:
        super().__init__(f"a new role needs a password: none given for {', '.join(names.of(k) for k in kinds)}")
        self.kinds = kinds


@dataclass(frozen=True)
class RoleNames:
    owner: str
    worker: str
    operator: str
    reader: str

    def of(self, kind: Kind) -> str:
        name: str = getattr(self, kind.value)
        return name

    def check(self) -> None:
        names = [self.of(kind) for kind in Kind]
        if len(set(names)) != len(names):
            raise RoleError(f"the four roles need four different names, not {', '.join(names)}")


def check_role_name(name: str) -> str:
    """A role name as the settings accept it: lower case letters, digits and _, and none of PostgreSQL's own."""
    if not _NAME.match(name) or name.startswith("pg_"):
        raise ValueError(f"{name!r} is not a role name: 1 to 63 of a-z, 0-9 and _, not starting with a digit or pg_")
    return name


@dataclass(frozen=True)
class RoleChange:
    kind: Kind
    role: str
    created: bool
    password_set: bool


@contextmanager
def _connection(url: str) -> Iterator[Connection]:
    # hide_parameters: an error must not quote a password verifier; the pool is not needed for one transaction.
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, hide_parameters=True)
    try:
        with engine.begin() as connection:
            yield connection
    except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.InternalError) as error:
        # The server's message is one line; what follows it would quote the statement.
        raise RoleError(str(error.orig).strip().splitlines()[0]) from None
    finally:
        engine.dispose()


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def _role_exists(connection: Connection, name: str) -> bool:
    return bool(connection.scalar(sqlalchemy.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}))


def create_roles(url: str, names: RoleNames, passwords: Mapping[Kind, str | None]) -> list[RoleChange]:
    """Create the roles (or bring existing ones back to their attributes), give the owner the database and its
    objects, and grant the others what they need; a password is set where one is given. Safe to run again."""
    names.check()
    changes: list[RoleChange] = []
    with _connection(url) as connection:
        superusers = connection.scalars(
            sqlalchemy.text("SELECT rolname FROM pg_roles WHERE rolsuper AND rolname = ANY(:names)"),
            {"names": [names.of(kind) for kind in Kind]},
        ).all()
        if superusers:
            # ALTER ROLE would take away its superuser: never demote an administrator by a naming mistake.
            raise RoleError(f"role {', '.join(superusers)} is a superuser: name the processor's roles otherwise")
        me = connection.scalar(sqlalchemy.text("SELECT current_user"))
        if me in {names.of(kind) for kind in Kind}:
            raise RoleError(f"connect as an administrator to create the roles, not as {me}, one of them")
        existing = {kind: _role_exists(connection, names.of(kind)) for kind in Kind}
        missing = [kind for kind in Kind if not existing[kind] and not passwords.get(kind)]
        if missing:
            raise PasswordsMissing(missing, names)
        for kind in Kind:
            name = names.of(kind)
            verb = "ALTER" if existing[kind] else "CREATE"
            password = passwords.get(kind)
            clause, parameters = "", {}
            if password:
                # Sent as a SCRAM verifier, never as the password: a statement log or an error would show only that.
                raw = connection.connection.dbapi_connection
                verifier: str = psycopg2.extensions.encrypt_password(password, name, raw, "scram-sha-256")
                clause, parameters = " PASSWORD :verifier", {"verifier": verifier}
            connection.execute(
                sqlalchemy.text(f"{verb} ROLE {_quote(connection, name)} WITH {_ATTRIBUTES}{clause}"), parameters
            )
            changes.append(RoleChange(kind, name, created=not existing[kind], password_set=bool(password)))
        _secure_database(connection, names)
        _give_to_owner(connection, names.owner)
        apply_grants(connection, names)
    return changes


def _secure_database(connection: Connection, names: RoleNames) -> None:
    """Only the processor's roles connect; no one but the owner creates anything, temporary tables included."""
    database = _quote(connection, make_url(connection.engine.url).database or "")
    owner = _quote(connection, names.owner)
    restricted = ", ".join(_quote(connection, names.of(kind)) for kind in RESTRICTED)
    for statement in (
        f"ALTER DATABASE {database} OWNER TO {owner}",
        f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {database} TO {restricted}",
        # PostgreSQL before 15 lets every role create objects in public.
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}",
        f"GRANT USAGE ON SCHEMA public TO {restricted}",
    ):
        connection.execute(sqlalchemy.text(statement))


_NOT_OWNED = sqlalchemy.text(
    """
    SELECT 'TABLE' AS kind, format('%I', c.relname) AS object, pg_get_userbyid(c.relowner) AS owner
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :owner)
    UNION ALL
    -- A sequence that belongs to a table column moves with its table.
    SELECT 'SEQUENCE', format('%I', c.relname), pg_get_userbyid(c.relowner)
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'
      AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = :owner)
      AND NOT EXISTS (SELECT 1 FROM pg_depend d
                      WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text,
           pg_get_userbyid(p.proowner)
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace
      AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = :owner)"""
)


def _give_to_owner(connection: Connection, owner: str) -> None:
    """Make the owner role own the schema's objects (a database migrated before the roles existed has another
    owner), so that it can migrate them and grant on them."""
    for row in connection.execute(_NOT_OWNED, {"owner": owner}).all():
        try:
            with connection.begin_nested():
                connection.execute(
                    sqlalchemy.text(f"ALTER {row.kind} {row.object} OWNER TO {_quote(connection, owner)}")
                )
        except sqlalchemy.exc.ProgrammingError:
            raise RoleError(
                f"{row.kind.lower()} {row.object} is owned by {row.owner}, not {owner}: "
                "run 'processor db roles' as a superuser to give it to the owner role"
            ) from None


def apply_grants(connection: Connection, names: RoleNames) -> None:
    """Grant each restricted role exactly what TABLE_GRANTS and SEQUENCE_GRANTS say, on the objects that exist."""
    tables = set(
        connection.scalars(sqlalchemy.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).all()
    )
    sequences = set(
        connection.scalars(sqlalchemy.text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")).all()
    )
    for kind in RESTRICTED:
        role = _quote(connection, names.of(kind))
        # Revoked first, so that a privilege taken out of the table above is taken from the role too; the whole
        # change commits at once, so a running worker never sees its grants missing.
        connection.execute(sqlalchemy.text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
        connection.execute(sqlalchemy.text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}"))
        for table, privileges in TABLE_GRANTS[kind].items():
            if privileges and table in tables:
                connection.execute(sqlalchemy.text(f"GRANT {privileges} ON {_quote(connection, table)} TO {role}"))
        for sequence in SEQUENCE_GRANTS[kind]:
            if sequence in sequences:
                connection.execute(sqlalchemy.text(f"GRANT USAGE ON SEQUENCE {_quote(connection, sequence)} TO {role}"))


def grant_existing(url: str, names: RoleNames) -> list[str]:
    """After a migration: give the owner any object it does not own and grant the restricted roles again, if the
    roles exist (`processor db roles` made them); returns the roles granted to, none when there are no roles."""
    with _connection(url) as connection:
        present = [kind for kind in RESTRICTED if _role_exists(connection, names.of(kind))]
        if not present:
            return []
        if not _role_exists(connection, names.owner):
            raise RoleError(f"the owner role {names.owner} is missing: run 'processor db roles'")
        missing = [names.of(kind) for kind in RESTRICTED if kind not in present]
        if missing:
            raise RoleError(f"role {', '.join(missing)} is missing: run 'processor db roles'")
        _give_to_owner(connection, names.owner)
        apply_grants(connection, names)
        return [names.of(kind) for kind in present]
