"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_

from cdb_service.db.pool_metrics import observe_pool
from cdb_service.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine whose every wait is bounded (see `Settings.db_*_timeout_s`)."""
    url = settings.effective_database_url
    if settings.is_sqlite:
        _ensure_sqlite_dir(url)
        engine = create_async_engine(
            url,
            connect_args={"timeout": settings.db_lock_timeout_s},
            pool_timeout=settings.db_connect_timeout_s,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
        )
        _configure_sqlite(
            engine.sync_engine, settings.db_lock_timeout_s, settings.db_statement_timeout_s
        )
        observe_pool(engine)
        return engine
    statement_ms = int(settings.db_statement_timeout_s * 1000)
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=10,
        # A connection that died while idle (restart, reset) is found and replaced at
        # checkout instead of failing the request that drew it.
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_s,
        json_serializer=_json_dumps,
        connect_args={
            "timeout": settings.db_connect_timeout_s,
            # Client-side: the only bound on a connection that stalls without closing.
            "command_timeout": settings.db_statement_timeout_s,
            "server_settings": {
                "statement_timeout": str(statement_ms),
                "lock_timeout": str(int(settings.db_lock_timeout_s * 1000)),
                # A transaction left open by a lost client does not hold the registry lock.
                "idle_in_transaction_session_timeout": str(max(statement_ms * 3, 30_000)),
            },
        },
    )
    observe_pool(engine)
    return engine


# Names stay readable in the database (and searchable with LIKE on SQLite). One encoder
# for every value: `json.dumps` with an option builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _json_dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _ensure_sqlite_dir(url: str) -> None:
    from pathlib import Path

    path = url.partition(":///")[2]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, lock_timeout_s: float, statement_timeout_s: float) -> None:
    """Make SQLite behave like a database: FKs, WAL, a busy timeout, real transactions.

    pysqlite's own transaction handling starts transactions lazily on the first
    write and runs reads outside any transaction; we switch it off and emit BEGIN
    ourselves so that a read transaction sees one snapshot and a write transaction
    takes the write lock at its first statement.

    Waits are bounded: the busy timeout bounds lock waits; a progress handler
    interrupts a statement that runs past its deadline (SQLITE_INTERRUPT).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info["statement_deadline"] = [math.inf]

        def _past_deadline() -> int:
            return 1 if time.monotonic() > deadline[0] else 0

        # Checked every few thousand VM steps: cheap, and a runaway statement stops.
        await_(dbapi_connection._connection.set_progress_handler(_past_deadline, 20_000))
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: an acknowledged write survives a power cut, not only a crash.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Any, *_: Any) -> None:
        deadline = conn.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = time.monotonic() + statement_timeout_s

    @event.listens_for(engine, "after_cursor_execute")
    def _disarm(conn: Any, *_: Any) -> None:
        deadline = conn.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = math.inf

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")
