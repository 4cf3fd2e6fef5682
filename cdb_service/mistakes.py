"""A user's mistake at the command line, said in one line with what to do about it.

Every `cdb-service` command runs inside `one_line()`'s net: a wrong path, an unreadable
file, an unreachable URL or database, a server certificate from a private CA, a bad
setting. Those are the user's to fix, so they get one line on standard error and exit
status 2, never a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import traceback
from dataclasses import dataclass
from urllib.parse import urlsplit

from cdb_service.kernel.errors import causes

EXIT_MISTAKE = 2
# The addresses asyncpg names in "Connect call failed ('127.0.0.1', 5432)".
_TRIED = re.compile(r"\('([^']+)', (\d+)")


class UserMistake(Exception):
    """Raised by a command that has found the user's mistake and can say it plainly."""


def _untrusted(error: BaseException) -> str | None:
    chain = causes(error)
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return str(link.verify_message or link.reason or "verification failed")
    if any("CERTIFICATE_VERIFY_FAILED" in str(link) for link in chain):
        return "certificate verify failed"
    return None


def _file(error: OSError) -> str:
    name = error.filename
    what = f"{name}" if name else "a file"
    if isinstance(error, FileNotFoundError):
        return f"no such file or directory: {what}"
    if isinstance(error, IsADirectoryError):
        return f"{what} is a directory; give a file"
    if isinstance(error, FileExistsError):
        return f"{what} is in the way: it exists and is not a directory"
    if isinstance(error, NotADirectoryError):
        return f"a part of the path {what} is not a directory"
    if isinstance(error, PermissionError):
        return f"permission denied: {what}"
    return f"{what}: {error.strerror or error}"


@dataclass(frozen=True)
class DatabaseTarget:
    """What a database failure is told against: where the command was pointed and the
    bounds it ran under (`Settings`' values; this module stands beside the settings)."""

    url: str = ""
    connect_timeout_s: float | None = None
    statement_timeout_s: float | None = None
    lock_timeout_s: float | None = None


def _addresses(text: str, url: str) -> str:
    """host:port as the driver tried them (its message names them), else from the URL."""
    tried = dict.fromkeys(f"{host}:{port}" for host, port in _TRIED.findall(text))
    if tried:
        return ", ".join(tried)
    netloc = urlsplit(url).netloc.rpartition("@")[2] if "://" in url else ""
    return netloc or "the database"


def _connecting(link: BaseException) -> bool:
    """Whether `link` ran out while the driver was opening a connection (bounded by the
    connect timeout), not in a query, including the queries a new connection runs
    first (bounded by the statement timeout): the driver's deepest frame says which."""
    frames = [f for f in traceback.extract_tb(link.__traceback__) if "asyncpg" in f.filename]
    if not frames:
        return False
    deepest = frames[-1]
    return deepest.name == "connect" or deepest.filename.endswith("connect_utils.py")


def _in_driver(link: BaseException) -> bool:
    """Whether `link` passed through the database driver (a timeout of a database wait,
    not of some other wait of the command)."""
    return any("asyncpg" in frame.filename or "sqlalchemy" in frame.filename
               for frame in traceback.extract_tb(link.__traceback__))  # fmt: skip


def _bound(value: float | None, variable: str) -> str:
    return f"{variable}={value:g} s" if value is not None else variable


def _database_cause(error: BaseException, target: DatabaseTarget) -> str | None:
    """The real cause of a database failure, named by what the driver said (SQLSTATE,
    errno, where it was raised), with the setting that bounds it or the URL to check.

    Why: "cannot connect ()" for a statement that ran past its timeout sends an operator
    to the network at night; each cause has its own remedy."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    url = target.url
    statement = _bound(target.statement_timeout_s, "CDB_DB_STATEMENT_TIMEOUT_S")
    lock = _bound(target.lock_timeout_s, "CDB_DB_LOCK_TIMEOUT_S")
    connect = _bound(target.connect_timeout_s, "CDB_DB_CONNECT_TIMEOUT_S")
    raise_statement = "raise CDB_DB_STATEMENT_TIMEOUT_S for this command"
    for link in causes(error):
        text = str(link).splitlines()[0] if str(link) else ""
        sqlstate = getattr(link, "sqlstate", None)
        if sqlstate == "57014" and "statement timeout" in text:
            return (
                f"the database cancelled a statement that ran past the statement timeout "
                f"({statement}): "
                f"{text}; the work is larger or the database slower than that allows: "
                + raise_statement
            )
        if sqlstate == "55P03":
            return (
                f"a lock was not granted within the lock timeout ({lock}): {text}; "
                "another transaction holds it (see pg_stat_activity), or raise "
                "CDB_DB_LOCK_TIMEOUT_S"
            )
        if isinstance(sqlstate, str) and sqlstate.startswith("28"):
            return (f"the database refused the login ({text}): authentication failed at "
                    f"{_addresses('', url)}; check the user and password in CDB_DATABASE_URL "
                    "and the server's pg_hba.conf")  # fmt: skip
        if sqlstate == "3D000":
            return f"{text} at {_addresses('', url)}; create it, or fix CDB_DATABASE_URL"
        if isinstance(link, socket.gaierror):
            return (f"cannot resolve the database host {_addresses('', url)} "
                    f"({link.strerror or link}); check CDB_DATABASE_URL")  # fmt: skip
        refused = isinstance(link, ConnectionRefusedError) or (
            isinstance(link, OSError) and link.errno is None and "Connect call failed" in text
        )
        if refused:
            return (
                f"database connection refused by {_addresses(str(link), url)}: nothing listens "
                "there; check that PostgreSQL runs and CDB_DATABASE_URL's host and port"
            )
        if isinstance(link, PoolTimeout):
            return f"no free database connection within the connect timeout ({connect}): {text}"
        if isinstance(link, TimeoutError) and _in_driver(link):
            if _connecting(link):
                return (
                    f"no answer from the database at {_addresses('', url)} within the "
                    f"connect timeout ({connect}): the host or a firewall drops the "
                    "connection, or PostgreSQL is hung; check CDB_DATABASE_URL and the network"
                )
            return (
                f"a statement ran past the statement timeout ({statement}) with no answer "
                "from the database; the work is larger or the database slower than that "
                "allows: " + raise_statement
            )
    return None


def _database(error: BaseException, target: DatabaseTarget) -> str | None:
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    if isinstance(error, ArgumentError | NoSuchModuleError):
        return f"not a usable database URL ({error}); check CDB_DATABASE_URL"
    cause = _database_cause(error, target)
    if cause is not None:
        return cause
    if not isinstance(error, DBAPIError):
        return None
    text = str(error.orig or error).splitlines()[0]
    lowered = text.lower()
    if ("relation" in lowered and "does not exist" in lowered) or "no such table" in lowered:
        return f"the database has no CDB tables yet ({text}); run `cdb-service migrate` first"
    environmental = ("does not exist", "authentication", "connect", "unable to open",
                     "permission denied", "timeout", "read-only", "disk")  # fmt: skip
    if isinstance(error.orig, OSError) or any(word in lowered for word in environmental):
        return f"cannot use the database: {text}; check CDB_DATABASE_URL and that it runs"
    return None


def explain(error: BaseException, database: DatabaseTarget | None = None) -> str | None:
    """The one line for a user's mistake; None when `error` is not one (a bug).

    `database`: where the command was pointed and its bounds, for naming a database
    failure's cause with the setting to change."""
    import httpx
    from pydantic import ValidationError

    if isinstance(error, UserMistake):
        return str(error)
    untrusted = _untrusted(error)
    if untrusted is not None:
        return (
            f"the server's TLS certificate is not trusted ({untrusted}); if a private CA "
            "signed it, pass that CA's certificate (--cacert or --ca)"
        )
    if isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLCertVerificationError):
        return f"cannot use the TLS certificate or key files ({error.reason or error})"
    if isinstance(error, httpx.HTTPStatusError):
        return f"{error.request.url} answered {error.response.status_code}"
    if isinstance(error, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"not an http(s) URL: {error}"
    if isinstance(error, httpx.TimeoutException):
        return f"no answer in time from {error.request.url}"
    if isinstance(error, httpx.TransportError):
        return f"cannot reach {error.request.url}: {error or type(error).__name__}"
    if isinstance(error, UnicodeDecodeError):
        return f"the file is not UTF-8 text (byte {error.start}: {error.reason})"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        return f"setting {where.upper()}: {first.get('msg')} (environment CDB_{where.upper()})"
    target = database or DatabaseTarget()
    explained = _database(error, target)
    if explained is not None:
        return explained
    if isinstance(error, OSError) and (error.filename or isinstance(error, FileNotFoundError)):
        return _file(error)
    if isinstance(error, TimeoutError):
        # A bare timeout whose traceback no longer shows the driver (it crossed a thread:
        # migrations run in one): a database wait all the same, so name both bounds.
        statement = _bound(target.statement_timeout_s, "CDB_DB_STATEMENT_TIMEOUT_S")
        connect = _bound(target.connect_timeout_s, "CDB_DB_CONNECT_TIMEOUT_S")
        return (
            f"timed out waiting for the database: a statement ran past the statement timeout "
            f"({statement}) or connecting ran past the connect timeout ({connect}); raise the "
            "one this command needs, or check CDB_DATABASE_URL and the network"
        )
    if isinstance(error, ConnectionError):
        return f"cannot connect ({error or type(error).__name__}); check CDB_DATABASE_URL"
    if error.__cause__ is not None:
        # A wrapper (a database fault raised `from` the driver's error): explain its cause.
        return explain(error.__cause__, database)
    if _closed_after_failure(error):
        # Cleaning up after a failed statement found the connection already closed (the
        # driver drops it on a timeout): the failure that closed it is the cause.
        return explain(error.__context__, database)  # type: ignore[arg-type]
    if database is not None and _inside_the_driver(error):
        # An error from inside SQLAlchemy or asyncpg that names no cause of its own (a
        # timeout cut a connection's first queries short, and the dialect read a None):
        # what the user can act on is the database and the bounds of a wait for it.
        statement = _bound(target.statement_timeout_s, "CDB_DB_STATEMENT_TIMEOUT_S")
        connect = _bound(target.connect_timeout_s, "CDB_DB_CONNECT_TIMEOUT_S")
        return (
            f"the database connection failed ({type(error).__name__}: {str(error)[:120]}); "
            f"if the database is slow, a bound may have run out: statement timeout "
            f"({statement}), connect timeout ({connect}); check CDB_DATABASE_URL too"
        )
    return None


def _inside_the_driver(error: BaseException) -> bool:
    """Whether the error was raised inside the database client libraries."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and any(
        part in frames[-1].filename for part in ("/sqlalchemy/", "/asyncpg/")
    )


def _closed_after_failure(error: BaseException) -> bool:
    from sqlalchemy.exc import ResourceClosedError

    return isinstance(error, ResourceClosedError) and error.__context__ is not None
