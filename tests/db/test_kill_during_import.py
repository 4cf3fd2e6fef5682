"""`kill -9` in the middle of a national batch import leaves no trace and consumes no revision.

On both databases: the import command is killed while it is writing (the SQLite WAL
is growing; PostgreSQL shows its transaction holding a transaction id), and then the
registry is exactly what it was, and the next write takes the next revision number.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import asyncpg
import pytest

from cdb_service.registry.formats.ndjson import export_lines
from tests.support import factories
from tests.support.live import pg_database
from tests.support.service_process import executable

ENTRIES = 20_000


def _batch(path: Path, prefix: str, count: int) -> Path:
    lines = (("authorities", factories.authority(code=f"DE:{prefix}{n}")) for n in range(count))
    path.write_text("".join(line + "\n" for line in export_lines(list(lines))))
    return path


@contextmanager
def _database(backend: str, tmp_path: Path) -> Iterator[tuple[str, Callable[[str], list[tuple]]]]:
    if backend == "sqlite":
        file = tmp_path / "cdb.sqlite3"

        def query(sql: str) -> list[tuple]:
            with closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as db:
                return list(db.execute(sql).fetchall())

        yield f"sqlite:///{file}", query
        return
    with pg_database() as url:

        def pg_query(sql: str) -> list[tuple]:
            async def run() -> list[tuple]:
                connection = await asyncpg.connect(url)
                try:
                    return [tuple(r) for r in await connection.fetch(sql)]
                finally:
                    await connection.close()

            return asyncio.run(run())

        yield url, pg_query


def _writing(backend: str, url: str, query: Callable[[str], list[tuple]]) -> bool:
    if backend == "sqlite":
        wal = Path(url.removeprefix("sqlite:///") + "-wal")
        return wal.exists() and wal.stat().st_size > 2_000_000
    name = url.rpartition("/")[2]
    return bool(query(f"SELECT 1 FROM pg_stat_activity WHERE datname = '{name}' "
                      "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"))  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_mid_import_leaves_no_trace_and_consumes_no_revision(
    backend: str, tmp_path: Path
) -> None:
    with _database(backend, tmp_path) as (url, query):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDB_")}
        env |= {"CDB_DATABASE_URL": url, "CDB_DATA_DIR": str(tmp_path), "CDB_LOG_LEVEL": "WARNING"}
        run = [executable()]
        subprocess.run([*run, "migrate"], env=env, check=True, capture_output=True)
        small = _batch(tmp_path / "small.ndjson", "SMALL-", 3)
        first = subprocess.run([*run, "import", str(small), "--owner", "DE"], env=env,
                               check=True, capture_output=True, text=True)  # fmt: skip
        assert json.loads(first.stdout)["revision"] == 1
        before = (
            query("SELECT count(*) FROM authorities"),
            query("SELECT count(*) FROM revisions"),
        )

        big = _batch(tmp_path / "big.ndjson", "BIG-", ENTRIES)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        importing = subprocess.Popen([*run, "import", str(big), "--owner", "DE"], env=env, **quiet)
        deadline = time.monotonic() + 120
        while not _writing(backend, url, query):
            assert importing.poll() is None, "the import ended before it was caught writing"
            assert time.monotonic() < deadline, "the import never started writing"
            time.sleep(0.05)
        os.kill(importing.pid, signal.SIGKILL)
        importing.wait(timeout=10)

        after = (query("SELECT count(*) FROM authorities"), query("SELECT count(*) FROM revisions"))
        assert after == before == ([(3,)], [(1,)])
        assert query("SELECT revision FROM registry_head") == [(1,)]
        if backend == "sqlite":
            assert query("PRAGMA integrity_check") == [("ok",)]
        # The number the killed import held was given back: the next write takes 2.
        again = _batch(tmp_path / "again.ndjson", "AGAIN-", 1)
        done = subprocess.run([*run, "import", str(again), "--owner", "DE"], env=env,
                              check=True, capture_output=True, text=True)  # fmt: skip
        assert json.loads(done.stdout)["revision"] == 2
