"""Can the database take a registry write now? A bounded probe, for write readiness.

Reading is not enough: a full disk (or a read-only or failing volume) lets every
read through while every registry write fails. So the probe commits one row of its
own, in a transaction that first takes the registry's head lock, as every write does,
but waits for it only `lock_wait_s` (PostgreSQL `lock_timeout`; SQLite's busy
timeout): a writer that holds the lock longer (a stuck session, a long import) makes
writes wait out `db_lock_timeout_s` and fail, and the probe says so in a second.
Taking the lock for a moment costs a writer no more than one more small write; the
readiness answer is shared for a second (`ops/write_ready.py`), so polls cannot
queue on it. A pool with no free connection is waited for as long, then named.
The row is not the registry's: it makes no revision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket

from sqlalchemy import String, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from cdb_service.db.base import Base, DateTimeUTC
from cdb_service.db.faults import FaultKind, classify
from cdb_service.db.revisions.tables import RegistryHead
from cdb_service.db.revisions.writer import RevisionWriter

INSTANCE = f"{socket.gethostname()}:{os.getpid()}"[:100]


class WriteCheck(Base):
    """One row per serving process: when readiness last committed a write."""

    __tablename__ = "write_checks"
    instance: Mapped[str] = mapped_column(String(100), primary_key=True)
    checked_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC)


class NotWritable(Exception):
    """Writes cannot commit now, and why in words an operator acts on."""


async def check_write(engine: AsyncEngine, lock_wait_s: float, lock_timeout_s: float) -> None:
    """Commit one small write behind the head lock; raises `NotWritable` (a full pool, a
    held lock) or what the database raises. `lock_timeout_s`: the engine's own, restored
    on SQLite, whose busy timeout belongs to the connection."""
    connection = await _connection(engine, lock_wait_s)
    sqlite = engine.dialect.name == "sqlite"
    try:
        if sqlite:
            await _busy_timeout(connection, lock_wait_s)
        try:
            async with connection.begin():
                await _lock_head(connection, lock_wait_s, sqlite)
                await _write_row(connection, sqlite)
        except Exception as error:
            fault = classify(error)
            if fault is not None and fault.kind is FaultKind.TIMEOUT:
                raise NotWritable(
                    f"the registry's head lock is held by another writer (not granted within "
                    f"{lock_wait_s:g} s, CDB_READY_LOCK_WAIT_S): writes wait and fail"
                ) from error
            raise
        finally:
            if sqlite:
                await _busy_timeout(connection, lock_timeout_s)
    finally:
        await connection.close()


async def _connection(engine: AsyncEngine, wait_s: float) -> AsyncConnection:
    """A pooled connection; when none is free, waited for `wait_s` at most."""
    pool = engine.pool
    checked_out = getattr(pool, "checkedout", lambda: 0)()
    capacity = getattr(pool, "size", lambda: 0)() + max(0, getattr(pool, "_max_overflow", 0))
    if not capacity or checked_out < capacity:
        return await engine.connect()  # a free one, or a new one (the caller's deadline)
    try:
        async with asyncio.timeout(wait_s):
            return await engine.connect()
    except TimeoutError:
        raise NotWritable(
            f"the connection pool is exhausted: {checked_out} of {capacity} connections in use, "
            f"none free within {wait_s:g} s (CDB_DB_POOL_SIZE)"
        ) from None


async def _busy_timeout(connection: AsyncConnection, seconds: float) -> None:
    """SQLite's lock wait, per connection (ended at once: SQLAlchemy began a transaction)."""
    await connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    await connection.commit()


async def _lock_head(connection: AsyncConnection, wait_s: float, sqlite: bool) -> None:
    if sqlite:
        return  # the write below takes the database's write lock: SQLite's head lock
    await connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_s * 1000)}")
    head = select(RegistryHead.revision).where(RegistryHead.id == RevisionWriter.LOCK_ROW)
    await connection.execute(head.with_for_update())


async def _write_row(connection: AsyncConnection, sqlite: bool) -> None:
    now = dt.datetime.now(dt.UTC)
    # Rows of processes gone for a day are cleared on the way (restarts add rows).
    stale = now - dt.timedelta(days=1)
    await connection.execute(
        delete(WriteCheck).where(WriteCheck.checked_at < stale, WriteCheck.instance != INSTANCE)
    )
    # An upsert: two readiness checks of one process at once must not collide.
    insert = sqlite_insert if sqlite else pg_insert
    statement = insert(WriteCheck).values(instance=INSTANCE, checked_at=now)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[WriteCheck.instance], set_={"checked_at": now}
        )
    )
