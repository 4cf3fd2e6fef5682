"""A user's mistake at the command line, said in one line with what to do about it.

Every `cdb-service` command runs inside `one_line()`'s net: a wrong path, an unreadable
file, an unreachable URL or database, a server certificate from a private CA, a bad
setting. Those are the user's to fix, so they get one line on standard error and exit
status 2, never a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import ssl

from cdb_service.kernel.errors import causes

EXIT_MISTAKE = 2


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


def _database(error: BaseException) -> str | None:
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    if isinstance(error, ArgumentError | NoSuchModuleError):
        return f"not a usable database URL ({error}); check CDB_DATABASE_URL"
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


def explain(error: BaseException) -> str | None:
    """The one line for a user's mistake; None when `error` is not one (a bug)."""
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
    database = _database(error)
    if database is not None:
        return database
    if isinstance(error, OSError) and (error.filename or isinstance(error, FileNotFoundError)):
        return _file(error)
    if isinstance(error, ConnectionError | TimeoutError):
        return f"cannot connect ({error}); check CDB_DATABASE_URL and that the database runs"
    if error.__cause__ is not None:
        # A wrapper (a database fault raised `from` the driver's error): explain its cause.
        return explain(error.__cause__)
    return None
