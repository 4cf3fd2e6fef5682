"""Whether an error means "no database primary to talk to" (a 503), not a bug (a 500).

A failover shows itself in a few ways: the socket is refused or reset (the primary
is gone), the connection in hand dies mid-transaction, the host that answers is a
standby (read-only, or refused by `target_session_attrs`), or the server is
shutting down or still starting. All are the database's unavailability: the
client may retry, with its `Idempotency-Key`, and get one result.
"""

from __future__ import annotations

import socket

from sqlalchemy.exc import DBAPIError

# SQLSTATE classes and codes of unavailability: 08 connection exception, 57P0x
# operator intervention (shutdown, crash, cannot connect now), 25006 read-only
# transaction (a standby, or a primary demoted under us), 53300 too many connections.
_UNAVAILABLE_STATES = ("08", "57P01", "57P02", "57P03", "25006", "53300")
# asyncpg's own errors for a lost or unsuitable connection (no SQLSTATE of theirs).
_UNAVAILABLE_NAMES = {"ConnectionDoesNotExistError", "TargetServerAttributeNotMatched",
                      "ClientCannotConnectError"}  # fmt: skip


def database_unavailable(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = str(getattr(current, "sqlstate", None) or getattr(current, "pgcode", "") or "")
        if state and state.startswith(_UNAVAILABLE_STATES):
            return True
        if type(current).__name__ in _UNAVAILABLE_NAMES:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
