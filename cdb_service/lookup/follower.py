"""This worker's `IndexFollower`: builds the index at start, then polls the head a few times
a second and catches up, so `/resolve` answers from memory at most a poll behind.

It also answers read-your-writes waits (`reached`), reports its freshness (the lag of
the oldest revision seen and not applied) and caches rendered answers per revision.
It saves its index now and then (`lookup/saved.py`); started while the database is
down, the service answers from that saved index until the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.logging import get_logger
from cdb_service.lookup import saved
from cdb_service.lookup.index import LookupIndex
from cdb_service.lookup.snapshot import build, catch_up

log = get_logger("cdb.lookup")
POLL_INTERVAL_S = 0.2
ANSWER_CACHE_SIZE = 20_000
WAIT_STEP_S = 0.05


@dataclass
class IndexFollower:
    """Keeps one worker's index current; `/health/ready` reports its age."""

    sessions: async_sessionmaker[AsyncSession]
    interval: float = POLL_INTERVAL_S
    index: LookupIndex | None = None
    _task: asyncio.Task[None] | None = None
    # Encoded answers of this revision: a RIS asks the same questions all day.
    _answers: OrderedDict[Hashable, bytes] = field(default_factory=OrderedDict)
    _answers_at: tuple[int, str, int] = (-1, "", 0)
    # One catch-up at a time per worker: the poller and on-demand waits share it.
    _catching_up: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Where the index is saved, and how often at most (0: never).
    saved_path: Path | None = None
    save_every_s: float = 0.0
    # Set while the index is the saved one: when that one last matched the database.
    saved_from: dt.datetime | None = None
    _last_save: tuple[float, int, str] = (-float("inf"), -1, "")

    def answer(self, index: LookupIndex, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The encoded answer to `key` at the index's revision, computed once per revision."""
        now = dt.datetime.now(dt.UTC).isoformat()
        stamp = (index.revision, index.gazetteer.identity, index.expired_count(now))
        if stamp != self._answers_at:
            self._answers.clear()
            self._answers_at = stamp
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = compute()
            if len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        return found

    async def start(self) -> None:
        """Build now if the database allows; otherwise keep trying in the background."""
        await self._build()
        self._task = asyncio.create_task(self._follow(), name="lookup-index-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def refresh(self) -> None:
        """Catch up with the database now; build the index first if there is none yet."""
        if self.index is None:
            self.index = await build(self.sessions)
        else:
            await catch_up(self.index, self.sessions)

    async def rebuild(self) -> None:
        """A fresh index from a fresh snapshot (the data was replaced); the old one answers
        until the new one is whole."""
        self.index = await build(self.sessions)

    def load_saved(self) -> bool:
        """Answer from the saved index (the database does not answer): True if there is one."""
        found = saved.load(self.saved_path) if self.saved_path is not None else None
        if found is None:
            log.warning("no saved lookup index: look-ups wait for the database",
                        path=str(self.saved_path))  # fmt: skip
            return False
        self.index, self.saved_from = found.index, found.synced_at
        age = (dt.datetime.now(dt.UTC) - found.synced_at).total_seconds()
        log.warning("answering look-ups from the saved lookup index until the database answers",
                    revision=found.index.revision, synced_at=found.synced_at.isoformat(),
                    age_s=round(age))  # fmt: skip
        return True

    async def _build(self) -> None:
        try:
            self.index = await build(self.sessions)
        except Exception as error:
            log.warning("lookup index could not be built", error=repr(error))
            return
        self.saved_from = None
        log.info("lookup index built", revision=self.index.revision,
                 criteria=len(self.index.slot_of), geo_keys=self.index.key_count())  # fmt: skip
        await self._save()

    async def _save(self) -> None:
        """Save the index if it changed and the last save is old enough (never the saved
        one back: it is no newer than the file)."""
        index = self.index
        if index is None or self.saved_path is None or self.save_every_s <= 0:
            return
        now = time.monotonic()
        stamp = (index.revision, index.gazetteer.identity)
        last, *was = self._last_save
        if self.saved_from is not None or tuple(was) == stamp or now - last < self.save_every_s:
            return
        synced_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=now - index.freshness.checked_at)
        data = saved.dump(index, synced_at)  # on the loop: the index does not change meanwhile
        self._last_save = (now, *stamp)
        try:
            await asyncio.to_thread(saved.write, self.saved_path, data)
        except OSError as error:
            log.warning("lookup index could not be saved", path=str(self.saved_path),
                        error=repr(error))  # fmt: skip

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.index is None or self.saved_from is not None:
                await self._build()
                continue
            try:
                async with self._catching_up:
                    await catch_up(self.index, self.sessions)
            except Exception as error:
                log.warning("lookup index could not catch up", error=repr(error))
                continue
            await self._save()

    def freshness(self) -> tuple[float, float] | None:
        """(lag, seconds since the head was last read); None while there is no index."""
        if self.index is None:
            return None
        now = time.monotonic()
        fresh = self.index.freshness
        return fresh.lag(now), now - fresh.checked_at

    async def reached(self, revision: int, wait_s: float) -> bool:
        """Wait, at most `wait_s` s, until this worker's index has applied `revision`.

        Catches up itself rather than waiting for the next poll: a client that just
        wrote through another worker is served as soon as the database allows.
        """
        deadline = time.monotonic() + wait_s
        while True:
            index = self.index
            if index is not None and index.revision >= revision:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    async with self._catching_up:
                        if self.index is None or self.index.revision < revision:
                            await self.refresh()
            except TimeoutError:
                return self.index is not None and self.index.revision >= revision
            except Exception as error:  # the database: keep the bounded wait, report below
                log.warning("lookup index could not catch up on demand", error=repr(error))
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
                continue
            if self.index is not None and self.index.revision < revision:
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
