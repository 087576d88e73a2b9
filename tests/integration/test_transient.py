"""Which database errors a retry can fix, raised by a real PostgreSQL server rather than built by hand."""

from __future__ import annotations

import pytest
import sqlalchemy
import sqlalchemy.exc

from processor.db.engine import get_engine
from processor.db.transient import LostRace, is_transient


def error_of(database_url: str, *statements: str) -> sqlalchemy.exc.DBAPIError:
    """The error the last statement raises, the ones before it having set the scene."""
    *scene, last = statements
    with get_engine(database_url).connect() as connection:
        for statement in scene:
            connection.execute(sqlalchemy.text(statement))
        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
            connection.execute(sqlalchemy.text(last))
    return caught.value


class TestIsTransient:
    def test_statement_timeout_is_retried(self, database_url: str) -> None:
        error = error_of(database_url, "SET LOCAL statement_timeout = '10ms'", "SELECT pg_sleep(1)")

        assert error.orig.pgcode == "57014"  # type: ignore[union-attr]
        assert is_transient(error)

    def test_lock_timeout_is_retried(self, database_url: str) -> None:
        engine = get_engine(database_url)
        with engine.connect() as holder:
            holder.execute(sqlalchemy.text("SELECT pg_advisory_lock(4242)"))
            try:
                error = error_of(database_url, "SET LOCAL lock_timeout = '10ms'", "SELECT pg_advisory_lock(4242)")
            finally:
                holder.execute(sqlalchemy.text("SELECT pg_advisory_unlock(4242)"))

        assert error.orig.pgcode == "55P03"  # type: ignore[union-attr]
        assert is_transient(error)

    def test_a_refused_connection_is_retried(self) -> None:
        engine = sqlalchemy.create_engine(
            "postgresql+psycopg2://postgres@127.0.0.1:1/none", poolclass=sqlalchemy.pool.NullPool
        )
        with pytest.raises(sqlalchemy.exc.DBAPIError) as caught:
            engine.connect()

        assert is_transient(caught.value)

    @pytest.mark.parametrize(
        ("statement", "code"),
        [
            # program_limit_exceeded: the same statement fails the same way however often it is tried
            ("SELECT array_fill(0, ARRAY[100000, 100000, 100000])", "54000"),
            # undefined_file: a server-side file that is not there
            ("SELECT pg_read_file('/nonexistent/abcbank')", "58P01"),
            # a lock wait setting that the server refuses
            ("SET lock_timeout = 'soon'", "22023"),
        ],
    )
    def test_errors_a_retry_cannot_fix_are_not_retried(self, database_url: str, statement: str, code: str) -> None:
        error = error_of(database_url, statement)

        assert error.orig.pgcode == code  # type: ignore[union-attr]
        assert not is_transient(error)

    def test_a_lost_race_is_retried(self) -> None:
        assert is_transient(LostRace("recorded meanwhile"))
