"""SQLite is set up as a database: foreign keys, WAL, busy timeout, instants kept."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cdb_service.db.faults import FaultKind, classify
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from cdb_service.settings import Settings


async def test_sqlite_pragmas(services: Services) -> None:
    if services.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    async with services.engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
        # The lock timeout of both databases (`CDB_DB_LOCK_TIMEOUT_S`).
        lock_ms = int(services.settings.db_lock_timeout_s * 1000)
        assert await connection.scalar(text("PRAGMA busy_timeout")) == lock_ms
        assert await connection.scalar(text("PRAGMA synchronous")) == 2  # FULL


async def test_instants_keep_their_moment_whatever_the_offset(services: Services) -> None:
    kind = KINDS["maintenance-windows"]
    doc = validate(kind, {
        "owner": "EC", "ref": "w1", "component": "cdb", "reason": "upgrade",
        "starts_at": "2027-03-28T01:30:00+01:00", "ends_at": "2027-03-28T04:00:00+02:00",
    })  # fmt: skip
    created = (await services.writes.create(kind, doc, "op")).document
    import uuid

    stored = await services.reads.get(kind, uuid.UUID(created["id"]))
    assert stored is not None
    assert stored["starts_at"] == "2027-03-28T00:30:00Z"
    assert stored["ends_at"] == "2027-03-28T02:00:00Z"
    announced = dt.datetime.fromisoformat(stored["announced_at"])
    assert abs(announced - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


async def test_a_runaway_statement_is_interrupted_at_the_statement_timeout(tmp_path: Path) -> None:
    """SQLite has no server to cancel a query: a progress handler stops it at its deadline."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                        db_statement_timeout_s=0.3)  # fmt: skip
    services = Services.open(settings)
    endless = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
               "SELECT count(*) FROM n")  # fmt: skip
    try:
        async with services.engine.connect() as connection:
            started = time.monotonic()
            with pytest.raises(OperationalError) as raised:
                await connection.execute(text(endless))
            assert time.monotonic() - started < 0.3 + 2  # stopped, not run to the end (never)
            fault = classify(raised.value)
            assert fault is not None and fault.kind is FaultKind.TIMEOUT
            # The connection is usable again: the deadline belongs to one statement.
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await services.close()


async def test_a_write_after_a_stale_read_is_a_busy_database_not_a_bug(tmp_path: Path) -> None:
    """A transaction that read, then writes after another connection committed, fails at
    once with SQLITE_BUSY_SNAPSHOT (no busy wait helps it). It is the database being busy
    (503 with Retry-After), not an internal error: a console sign-in once answered 500."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'busy.sqlite3'}", auto_seed=False)
    services = Services.open(settings)
    try:
        async with services.engine.begin() as setup:
            await setup.execute(text("CREATE TABLE t (n INTEGER)"))
        async with services.engine.connect() as reader, services.engine.connect() as writer:
            await reader.begin()
            await reader.scalar(text("SELECT count(*) FROM t"))  # the snapshot is taken
            async with writer.begin():
                await writer.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(OperationalError) as raised:
                await reader.execute(text("INSERT INTO t VALUES (2)"))
            await reader.rollback()
        fault = classify(raised.value)
        assert fault is not None and fault.kind is FaultKind.TIMEOUT, raised.value
    finally:
        await services.close()
