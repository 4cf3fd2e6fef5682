"""The console's session table on PostgreSQL and SQLite: a token opens its session only
while it is live, a pending sign-in is taken once, and the table keeps no token."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from sqlalchemy import select, update

from cdb_service.console.sessions import ConsoleSession, SessionStore
from cdb_service.services import Services


def store(services: Services, idle_s: float = 60, absolute_s: float = 3600) -> SessionStore:
    return SessionStore(services.sessions, dt.timedelta(seconds=idle_s),
                        dt.timedelta(seconds=absolute_s))  # fmt: skip


async def test_a_session_lives_until_closed(services: Services) -> None:
    sessions = store(services)
    opened = await sessions.open({"sub": "camille", "person": "Camille"})
    found = await sessions.find(opened.token)
    assert found is not None and found.data["sub"] == "camille" and found.csrf == opened.csrf
    assert await sessions.find(opened.token + "x") is None
    async with services.sessions() as session:
        stored = (await session.scalars(select(ConsoleSession.token_hash))).all()
    assert opened.token not in stored and len(stored[0]) == 64  # only its SHA-256
    await sessions.close(opened.token)
    assert await sessions.find(opened.token) is None


async def test_idle_and_absolute_timeouts(services: Services) -> None:
    idle = store(services, idle_s=0.5)
    opened = await idle.open({"sub": "a"})
    await asyncio.sleep(0.7)
    assert await idle.find(opened.token) is None
    short = store(services, idle_s=60, absolute_s=0.5)
    opened = await short.open({"sub": "b"})
    assert await short.find(opened.token) is not None
    await asyncio.sleep(0.7)
    assert await short.find(opened.token) is None


async def test_a_pending_sign_in_is_taken_once_and_is_no_session(services: Services) -> None:
    sessions = store(services)
    pending = await sessions.begin_sign_in({"state": "s", "verifier": "v"})
    assert await sessions.find(pending.token) is None  # not a way in
    assert await sessions.take_sign_in(pending.token) == {"state": "s", "verifier": "v"}
    assert await sessions.take_sign_in(pending.token) is None


async def test_a_refresh_token_is_kept_sealed_and_spent_once(services: Services) -> None:
    """The table holds the provider's refresh token only sealed with the browser's token;
    two requests of one lapsed session renew it once, and a refused one is forgotten."""
    sessions = store(services)
    opened = await sessions.open({"sub": "a", "access_expires_at": 0.0}, "refresh-secret-1")
    async with services.sessions() as session:
        stored = (await session.scalars(select(ConsoleSession.data))).all()
    assert "refresh-secret-1" not in str(stored)
    found = await sessions.find(opened.token)
    assert found is not None and not found.may_write and found.renewable
    spent: list[str] = []

    async def renewer(data: dict[str, Any], refresh: str) -> tuple[dict[str, Any], str]:
        spent.append(refresh)
        await asyncio.sleep(0.05)
        return data | {"access_expires_at": time.time() + 60}, "refresh-secret-2"

    first, second = await asyncio.gather(sessions.renew(opened.token, renewer),
                                         sessions.renew(opened.token, renewer))  # fmt: skip
    assert first is not None and second is not None and first.may_write and second.may_write
    assert spent == ["refresh-secret-1"]

    async def refused(data: dict[str, Any], refresh: str) -> None:
        spent.append(refresh)

    lapsed = await sessions.open({"sub": "b", "access_expires_at": 0.0}, "refresh-secret-3")
    after = await sessions.renew(lapsed.token, refused)
    assert after is not None and not after.may_write and not after.renewable
    assert spent[-1] == "refresh-secret-3"


async def test_a_sign_in_is_taken_while_another_write_commits(services: Services) -> None:
    """A sign-in that comes back while another writer holds the database waits its turn
    and completes. On SQLite, reading the pending sign-in and then deleting it failed the
    callback with a 503 when the other write committed in between (SQLITE_BUSY_SNAPSHOT:
    no wait helps a transaction whose snapshot is stale)."""
    sessions = store(services)
    pending = await sessions.begin_sign_in({"state": "s"})
    other = await sessions.open({"sub": "other"})
    async with services.engine.connect() as writer:
        await writer.begin()
        await writer.execute(update(ConsoleSession).values(csrf="x"))  # the write lock
        taking = asyncio.create_task(sessions.take_sign_in(pending.token))
        finding = asyncio.create_task(sessions.find(other.token))
        await asyncio.sleep(0.3)  # both have started and wait for the writer
        await writer.commit()
    assert await taking == {"state": "s"}
    assert (found := await finding) is not None and found.data["sub"] == "other"
