"""Which database errors go away by themselves, so that retrying the same work later is the right answer."""

from __future__ import annotations

import sqlalchemy.exc

# SQLSTATE classes and codes of conditions that end without anyone fixing the request: connection exceptions
# (08), deadlocks and serialization failures (40001, 40P01), too many connections (53300) or a server out of
# memory (53200), a restart, crash or failover in progress (57P01, 57P02, 57P03), a read-only transaction on a
# demoted primary (25006), an idle-in-transaction timeout (25P03), a lock timeout (55P03) and a statement timeout
# (57014). Anything else with a code (a program limit 54000, a missing file 58P01, a full disk 53100...) fails
# the same way on every attempt: retrying it only delays the hold an operator needs to see.
_TRANSIENT_CLASSES = ("08",)
_TRANSIENT_CODES = {"40001", "40P01", "53300", "53200", "57P01", "57P02", "57P03", "25006", "25P03", "55P03", "57014"}


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
    if error.connection_invalidated:
        return True
    code = getattr(error.orig, "pgcode", None)
    if code is None:
        # No SQLSTATE: the server never answered (refused, dropped, timed out), which is the connection's doing.
        return isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError)
    return code.startswith(_TRANSIENT_CLASSES) or code in _TRANSIENT_CODES
