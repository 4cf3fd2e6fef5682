"""Which database errors mean "the database cannot serve now" rather than "this request is wrong".

One classifier for both drivers, used by the unit of work (may a failed write have
committed?), by readiness and by the HTTP error handlers (503, never 500). It walks
the exception chain, so it sees the driver's own error under SQLAlchemy's wrapper:
asyncpg's SQLSTATE classes, sqlite3's error names, and plain socket/timeout errors.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import exc as sa_exc

from cdb_service.kernel.errors import causes


class FaultKind(StrEnum):
    UNAVAILABLE = "database-unavailable"  # cannot connect, connection lost, shutting down
    TIMEOUT = "database-timeout"  # a statement, a lock wait or a pool checkout took too long
    STORAGE_FULL = "storage-full"  # the disk (or a file-size limit) refuses more data


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    reason: str


# PostgreSQL SQLSTATEs (asyncpg puts them on `.sqlstate`), by class or exact code.
_SQLSTATE_TIMEOUT = {"57014", "55P03"}  # statement_timeout / query cancelled; lock_timeout
_SQLSTATE_FULL = {"53100"}  # disk_full
_SQLSTATE_CLASSES_UNAVAILABLE = ("08", "53", "57", "58")  # connection, resources, shutdown, I/O
# A read-only transaction: the host that answered is a standby, or a primary demoted
# under us (a failover under way).
_SQLSTATE_READ_ONLY = "25006"
# asyncpg's own errors for a lost or unsuitable connection (they carry no SQLSTATE).
_ASYNCPG_UNAVAILABLE = {"ConnectionDoesNotExistError", "InterfaceError",
                        "TargetServerAttributeNotMatched", "ClientCannotConnectError"}  # fmt: skip
# sqlite3 error names (Python 3.11+ `.sqlite_errorname`).
# By prefix: the extended codes count too (SQLITE_BUSY_SNAPSHOT: a read-then-write
# transaction whose snapshot another writer moved past; it does not wait, it fails at once).
_SQLITE_TIMEOUT_PREFIXES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_INTERRUPT")
_SQLITE_FULL = {"SQLITE_FULL"}
_SQLITE_UNAVAILABLE_PREFIXES = ("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")


def classify(error: BaseException) -> Fault | None:
    """The fault behind `error`, or None when it is not the database's availability."""
    for item in causes(error):
        reason = f"{type(item).__name__}: {item}"[:200]
        sqlstate = getattr(item, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate in _SQLSTATE_FULL:
                return Fault(FaultKind.STORAGE_FULL, reason)
            if sqlstate in _SQLSTATE_TIMEOUT:
                return Fault(FaultKind.TIMEOUT, reason)
            if (
                sqlstate.startswith(_SQLSTATE_CLASSES_UNAVAILABLE)
                or sqlstate == _SQLSTATE_READ_ONLY
            ):
                return Fault(FaultKind.UNAVAILABLE, reason)
        name = getattr(item, "sqlite_errorname", None)
        if isinstance(name, str):
            if name in _SQLITE_FULL:
                return Fault(FaultKind.STORAGE_FULL, reason)
            if name.startswith(_SQLITE_TIMEOUT_PREFIXES):
                return Fault(FaultKind.TIMEOUT, reason)
            if name.startswith(_SQLITE_UNAVAILABLE_PREFIXES):
                return Fault(FaultKind.UNAVAILABLE, reason)
        if isinstance(item, (sa_exc.TimeoutError, asyncio.TimeoutError, TimeoutError)):
            return Fault(FaultKind.TIMEOUT, reason)
        if isinstance(item, OSError) and getattr(item, "errno", None) in (27, 28, 122):
            return Fault(FaultKind.STORAGE_FULL, reason)  # EFBIG, ENOSPC, EDQUOT
        if isinstance(item, (ConnectionError, OSError)):
            return Fault(FaultKind.UNAVAILABLE, reason)
        if isinstance(item, sa_exc.DBAPIError) and item.connection_invalidated:
            return Fault(FaultKind.UNAVAILABLE, reason)
        if type(item).__name__ in _ASYNCPG_UNAVAILABLE and type(item).__module__.startswith(
            "asyncpg"
        ):
            return Fault(FaultKind.UNAVAILABLE, reason)
    return None


class DatabaseFault(Exception):
    """A database fault met by a write, saying whether the write may have committed.

    `maybe_applied` is True only when the fault struck while COMMIT was under way:
    before it, the transaction cannot have committed; during it, nobody can know
    without reading the registry back.
    """

    def __init__(self, fault: Fault, *, maybe_applied: bool) -> None:
        super().__init__(fault.reason)
        self.fault = fault
        self.maybe_applied = maybe_applied
