"""The lookup follower's own thread: an event loop and a database engine of its own.

A worker's event loop should carry requests and nothing else. The follower's work (the
head poll a few times a second, reading and decoding pages of the feed, applying them,
mapping a new snapshot) runs here instead; what it produces, a new index, is handed to
the request path by one attribute assignment (`IndexFollower.index`), read without locks.

Its own loop rather than `asyncio.to_thread` per step: an `AsyncEngine`'s connections
belong to the loop that opened them, so the follower's queries need an engine made on
the loop they run on (`create_engine(settings)`, opened lazily there, disposed there).
The worker's loop awaits the follower's coroutines through `run` (cancelling the wait
cancels the work on this thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.db.engine import create_engine, session_factory
from cdb_service.settings import Settings

T = TypeVar("T")
# How long a stopping worker waits for the thread to wind down (it is a daemon thread:
# one stuck on a silent database does not hold the process).
CLOSE_WAIT_S = 5.0


class FollowerThread:
    """Started on first use; `close` ends it (a later use starts a new one)."""

    def __init__(self, settings: Settings, name: str = "lookup-follower") -> None:
        self._settings = settings
        self._name = name
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The thread's own sessions: use them only in coroutines run here."""
        if self._sessions is None:
            self._engine = create_engine(self._settings)
            self._sessions = session_factory(self._engine)
        return self._sessions

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `work` on this thread's loop; its future may be cancelled from any thread."""
        return asyncio.run_coroutine_threadsafe(work, self._started())

    async def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` here and wait for it without blocking the caller's loop."""
        return await asyncio.wrap_future(self.submit(work))

    async def close(self) -> None:
        """Cancel what runs here, dispose of the engine, end the thread."""
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        winding = asyncio.run_coroutine_threadsafe(self._wind_down(), loop)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.wrap_future(winding), CLOSE_WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, CLOSE_WAIT_S)
        self._engine = self._sessions = None  # of that loop: a later use makes its own

    async def _wind_down(self) -> None:
        here = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not here]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name=self._name,
                                          daemon=True)  # fmt: skip
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
