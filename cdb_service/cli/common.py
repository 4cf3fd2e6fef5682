"""What every command shares: JSON and text out, files in, a user's mistake, the database."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from cdb_service.mistakes import UserMistake
from cdb_service.settings import Settings


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def emit(text: str, out: str) -> None:
    """`-` is standard output; anything else a file path."""
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, "utf-8")


async def with_services(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    from cdb_service.services import Services

    services = Services.open(settings)
    try:
        return await job(services)
    finally:
        await services.close()


async def with_sessions(settings: Settings, job: Callable[[Any], Awaitable[Any]]) -> Any:
    """For a command that needs the database only (an import): the rest of the service
    (web framework, security gate, lookup index) is neither built nor imported, which
    is a fifth of such a process's memory."""
    from cdb_service.db.engine import create_engine, session_factory
    from cdb_service.security.dev import with_dev_defaults

    engine = create_engine(with_dev_defaults(settings))
    try:
        return await job(session_factory(engine))
    finally:
        await engine.dispose()


def user_error(message: str) -> NoReturn:
    """A user's mistake (a missing file, a wrong format): one line, exit status 2 (main)."""
    raise UserMistake(message)


def problem_lines(problem: Any) -> int:
    """A refused batch: its summary, then one line per problem (line or row, entry, field)."""
    print(f"cdb-service: {problem.detail}", file=sys.stderr)
    for error in problem.errors:
        where = " ".join(str(p) for p in error.loc)
        entry = f" [{error.entry}]" if error.entry else ""
        print(f"  {where}{entry}: {error.msg}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def opened(name: str) -> Iterator[BinaryIO]:
    """A file named on the command line, or standard input for "-" (left open)."""
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as handle:
        yield handle


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
