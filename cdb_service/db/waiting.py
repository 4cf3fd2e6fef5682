"""Waiting for a database that does not answer yet, with backoff, saying why each time.

A service started while its database is down (a node restarted before the database, a
failover under way) waits for it rather than exiting: it tries again after 1 s, 2 s,
4 s, ... up to `db_wait_max_s` between attempts, and logs every failed attempt with its
cause (the same words the command line uses) and the next wait.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cdb_service.logging import get_logger
from cdb_service.mistakes import DatabaseTarget, explain
from cdb_service.settings import Settings

log = get_logger("cdb.db")
FIRST_WAIT_S = 1.0


def target(settings: Settings) -> DatabaseTarget:
    return DatabaseTarget(settings.database_url, settings.db_connect_timeout_s,
                          settings.db_statement_timeout_s, settings.db_lock_timeout_s)  # fmt: skip


async def answers(engine: AsyncEngine, settings: Settings, attempt: int = 1,
                  next_wait_s: float | None = None) -> bool:  # fmt: skip
    """One attempt: True when the database answers; else the cause is logged."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        cause = explain(error, target(settings)) or repr(error)
        log.warning("the database does not answer; waiting for it", attempt=attempt,
                    cause=cause, next_wait_s=next_wait_s)  # fmt: skip
        return False
    return True


async def wait_for_database(engine: AsyncEngine, settings: Settings) -> None:
    """Return once the database answers (after the first failed attempt at start)."""
    wait, attempt = FIRST_WAIT_S, 1
    while True:
        await asyncio.sleep(wait)
        attempt += 1
        following = min(wait * 2, settings.db_wait_max_s)
        if await answers(engine, settings, attempt, following):
            log.info("the database answers", attempt=attempt)
            return
        wait = following
