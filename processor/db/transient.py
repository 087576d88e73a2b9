"""Which database errors go away by themselves, so that retrying the same work later is the right answer."""

from __future__ import annotations

import sqlalchemy.exc

# SQLSTATE classes and codes of conditions that end without anyone fixing the request: connection exceptions
# (08), transaction rollbacks such as deadlocks and serialization failures (40), insufficient resources (53),
# operator intervention such as a restart or failover (57P), a read-only transaction on a demoted primary
# (25006), an idle-in-transaction timeout (25P03), a lock timeout (55P03) and a statement timeout (57014).
_TRANSIENT_CLASSES = ("08", "40", "53", "57P")
_TRANSIENT_CODES = {"25006", "25P03", "55P03", "57014"}


class LostRace(Exception):
    """Work that another transaction got to first; done again, it sees what that one committed."""


def is_transient(error: BaseException) -> bool:
    """Whether a database error is worth retrying as it is."""
    if isinstance(error, LostRace):
        return True
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # no free connection in the pool
        return True
    if not isinstance(error, sqlalchemy.exc.DBAPIError):
        return False
    if error.connection_invalidated or isinstance(
        error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
    ):
        return True
    code = getattr(error.orig, "pgcode", None) or ""
    return code.startswith(_TRANSIENT_CLASSES) or code in _TRANSIENT_CODES
