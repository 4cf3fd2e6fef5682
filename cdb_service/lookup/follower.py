"""This worker's `IndexFollower`: obtains the index at start, then polls the head a few
times a second and catches up, so `/resolve` answers from memory at most a poll behind.

With a host snapshot (`shared.py`, the service's default) the index is mapped from the
file the workers of the host share, built by one of them, and caught up from the feed;
when a newer file appears (one worker renews it every `lookup_snapshot_interval_s`)
each worker maps it in a thread, catches it up and swaps it in by reference. Without
one (the mirror), the worker builds its own. Started while the database is down, the
service answers from the last snapshot until the database answers.

It also answers read-your-writes waits (`reached`), reports its freshness (the lag of
the oldest revision seen and not applied) and caches rendered answers per revision.

None of this runs on the worker's event loop: the polls, the reading and decoding of
feed pages, their application and the mapping of snapshots run on the follower's own
thread (`follower_thread.py`, with its own engine). A page is applied to a copy of the
index (`LookupIndex.forked`), never to the one requests read; the copy replaces it by
one assignment to `index`, which the request path reads without locks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import revisions as rev
from cdb_service.logging import get_logger
from cdb_service.lookup import saved
from cdb_service.lookup.follower_thread import FollowerThread
from cdb_service.lookup.index import LookupIndex
from cdb_service.lookup.shared import SharedSnapshot, committed_at
from cdb_service.lookup.snapshot import build, catch_up
from cdb_service.settings import Settings

log = get_logger("cdb.lookup")
POLL_INTERVAL_S = 0.2
ANSWER_CACHE_SIZE = 20_000
WAIT_STEP_S = 0.05


@dataclass
class IndexFollower:
    """Keeps one worker's index current; `/health/ready` reports its age."""

    # The database: the follower's thread opens an engine of its own on it.
    settings: Settings
    interval: float = POLL_INTERVAL_S
    # Replaced whole (by the follower's thread), never changed once requests read it.
    index: LookupIndex | None = None
    _task: concurrent.futures.Future[None] | None = None
    # Encoded answers of this revision: a RIS asks the same questions all day.
    _answers: OrderedDict[Hashable, bytes] = field(default_factory=OrderedDict)
    _answers_at: tuple[int, str, int] = (-1, "", 0)
    # Whole fast-path answers (ETag, body) by the request's raw query string and the day
    # in Brussels (an undated question asks about today): a RIS sends the same bytes all
    # day, and parsing them again costs more than the look-up. Forgotten with `_answers`.
    _prepared: OrderedDict[Hashable, tuple[str, bytes]] = field(default_factory=OrderedDict)
    # One catch-up at a time per worker: the poller and on-demand waits share it (on
    # the follower's thread, as everything that changes `index`).
    _catching_up: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The host's snapshot file (None: this worker builds its own index), and how often
    # at most a new one is written (0: never).
    shared: SharedSnapshot | None = None
    renew_every_s: float = 0.0
    # Set while the index is the saved one: when that one last matched the database.
    saved_from: dt.datetime | None = None
    # The snapshot file the index was mapped from ((inode, mtime_ns)), and the last look
    # at whether a new one is due.
    _mapped: tuple[int, int] | None = None
    _renew_looked: float = field(default_factory=time.monotonic)
    _renewing: asyncio.Future[bool] | None = None
    _renew_failures: int = 0
    # (revision, gazetteer identity) of the snapshot mapped: renewed only once the feed
    # has moved past it.
    _mapped_as: tuple[int, str] = (-1, "")
    _thread: FollowerThread = field(init=False)

    def __post_init__(self) -> None:
        self._thread = FollowerThread(self.settings)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The follower thread's sessions: only for coroutines that run there."""
        return self._thread.sessions

    def answer(self, index: LookupIndex, key: Hashable, compute: Callable[[], bytes]) -> bytes:
        """The encoded answer to `key` at the index's revision, computed once per revision."""
        self._forget_older(index)
        return _remembered(self._answers, key, compute)

    def prepared(self, index: LookupIndex, key: Hashable,
                 compute: Callable[[], tuple[str, bytes]]) -> tuple[str, bytes]:  # fmt: skip
        """A whole answer (ETag, body) to a request `key`, computed once per revision."""
        self._forget_older(index)
        return _remembered(self._prepared, key, compute)

    def _forget_older(self, index: LookupIndex) -> None:
        """Answers hold until the revision, the gazetteer or the count of expired
        certificates (answers flag them) moves."""
        now = dt.datetime.now(dt.UTC).isoformat()
        stamp = (index.revision, index.gazetteer.identity, index.expired_count(now))
        if stamp != self._answers_at:
            self._answers.clear()
            self._prepared.clear()
            self._answers_at = stamp

    async def start(self) -> None:
        """Obtain the index now if the database allows; otherwise keep trying in the background."""
        await self._thread.run(self._build())
        self._task = self._thread.submit(self._follow())

    async def stop(self) -> None:
        if self.shared is not None:
            self.shared.stop()
        if self._task is not None:
            self._task.cancel()
        await self._thread.close()

    async def refresh(self) -> None:
        """Catch up with the database now; build the index first if there is none yet."""
        await self._thread.run(self._refreshed())

    async def _refreshed(self) -> None:
        if self.index is None:
            self.index = await build(self.sessions)
        else:
            await self._catch_up()

    async def _catch_up(self) -> int:
        """`snapshot.catch_up` of the index requests read: the pages are applied to a copy,
        which replaces it (on the follower's thread)."""
        index = self.index
        if index is None:
            return 0
        fresh, applied = await catch_up(index, self.sessions)
        self.index = fresh
        return applied

    async def rebuild(self) -> None:
        """A fresh index from a fresh snapshot (the data was replaced); the old one answers
        until the new one is whole."""
        self.index = await self._thread.run(build(self.sessions))

    def load_saved(self) -> bool:
        """Answer from the host's last snapshot (the database does not answer): True if
        there is one, whatever its age (readiness judges that)."""
        path = self.shared.path if self.shared is not None else None
        try:
            found = saved.load(path) if path is not None else None
        except saved.Unusable as error:
            log.warning("saved lookup index unusable", path=str(path), reason=str(error))
            found = None
        if found is None:
            log.warning("no saved lookup index: look-ups wait for the database", path=str(path))
            return False
        self.index, self.saved_from, self._mapped = found.index, found.synced_at, found.file
        log.warning("answering look-ups from the saved lookup index until the database answers",
                    revision=found.index.revision, synced_at=found.synced_at.isoformat(),
                    age_s=round(found.age_s()))  # fmt: skip
        return True

    async def _build(self) -> bool:
        mapped = None
        if self.shared is not None:
            try:
                mapped = await self._from_host()
            except Exception as error:  # the runtime directory, the builder: build here
                log.warning("lookup snapshot unavailable: this worker builds its own index",
                            error=repr(error))  # fmt: skip
        try:
            index = mapped.index if mapped is not None else await build(self.sessions)
        except Exception as error:
            log.warning("lookup index could not be built", error=repr(error))
            return False
        self.index, self.saved_from = index, None
        if mapped is None:
            log.info("lookup index built", revision=index.revision,
                     criteria=len(index.slot_of), geo_keys=index.key_count())  # fmt: skip
        return True

    async def _from_host(self) -> saved.Saved | None:
        """The host's snapshot, mapped and caught up with the feed; built first (by this
        worker or by the host's builder, waited for) when missing, stale or foreign."""
        assert self.shared is not None
        shared = self.shared
        started = time.monotonic()
        for _ in range(2):
            found = await asyncio.to_thread(shared.obtain)
            if found is None:
                return None
            if await self._of_this_database(found):
                self._mapped_as = (found.index.revision, found.index.gazetteer.identity)
                async with self._catching_up:  # not read by requests yet: in place
                    _, applied = await catch_up(found.index, self.sessions, False)
                self._mapped = found.file
                metrics.LOOKUP_SNAPSHOTS.labels("mapped").inc()
                log.info("lookup index mapped from the host's snapshot", path=str(shared.path),
                         revision=found.index.revision, caught_up=applied,
                         snapshot_age_s=round(found.age_s(), 1),
                         seconds=round(time.monotonic() - started, 3),
                         criteria=len(found.index.slot_of))  # fmt: skip
                return found
            log.warning("lookup snapshot is of another database: it will be built again",
                        path=str(shared.path), revision=found.index.revision)  # fmt: skip
            await asyncio.to_thread(shared.replace, found.file)
        return None

    async def _of_this_database(self, found: saved.Saved) -> bool:
        """Whether the database committed the snapshot's revision when the file says."""
        async with rev.read_snapshot(self.sessions) as session:
            head = await rev.head_revision(session)
            at = await committed_at(session, found.index.revision)
        return found.index.revision <= head and at == found.committed_at

    async def _follow_host(self) -> None:
        """Map a new snapshot of the host when one is written (in a thread, caught up, then
        swapped in by reference), and renew the host's when it is due."""
        shared = self.shared
        if shared is None or self.index is None:
            return
        now = time.monotonic()
        index = self.index
        if (
            self.renew_every_s > 0
            and self._renewing is None
            and (now - self._renew_looked >= min(self.renew_every_s, RENEW_LOOK_S))
            # Only a snapshot that the feed has moved past: an unchanged one stays.
            and (index.revision, index.gazetteer.identity) != self._mapped_as
        ):
            self._renew_looked = now
            self._renewing = _in_daemon_thread(shared.renew, self._renew_due_s(index))
        if self._renewing is not None and self._renewing.done():
            try:
                self._renewing.result()
                self._renew_failures = 0
            except Exception:  # logged there: tried again later, less and less often
                self._renew_failures = min(self._renew_failures + 1, 8)
                self._renew_looked = now + min(
                    RENEW_RETRY_MAX_S, RENEW_LOOK_S * 2**self._renew_failures
                )
            self._renewing = None
        stamp = saved.stamp_of(shared.path)
        if stamp is None or stamp == self._mapped:
            return
        self._mapped = stamp  # one try per file
        found = await asyncio.to_thread(shared.load)
        if found is None or not await self._of_this_database(found):
            return
        as_written = (found.index.revision, found.index.gazetteer.identity)
        async with self._catching_up:
            await catch_up(found.index, self.sessions, False)  # not read by requests yet
            if self.index is None or found.index.revision >= self.index.revision:
                self._mapped_as = as_written
                self.index = found.index
                metrics.LOOKUP_SNAPSHOTS.labels("mapped").inc()
                log.info("lookup index swapped for the host's new snapshot",
                         revision=found.index.revision)  # fmt: skip

    def _renew_due_s(self, index: LookupIndex) -> float:
        """How old the host's snapshot may grow before this worker renews it: the
        setting's interval, unless the keys changed since it (the overlay, a dict per
        worker, copied with every page of the feed) outgrow OVERLAY_RENEW_KEYS. Then soon
        (an import of a country's courts, a worker started on a snapshot from before
        one): each worker would otherwise hold its own copy of what the next snapshot
        shares, for up to the whole interval."""
        if len(index.geo) > OVERLAY_RENEW_KEYS and self.shared is not None:
            # Builds some times their length apart, however long an import goes on.
            spacing = max(OVERLAY_RENEW_AGE_S, BUILDS_APART * self.shared.last_build_s)
            return min(self.renew_every_s, spacing)
        return self.renew_every_s

    async def _follow(self) -> None:
        failed = 0
        while True:
            # After failed builds, less and less often: each may start a builder process.
            await asyncio.sleep(min(BUILD_RETRY_MAX_S, self.interval * 2**failed))
            if self.index is None or self.saved_from is not None:
                failed = 0 if await self._build() else min(failed + 1, 16)
                continue
            try:
                async with self._catching_up:
                    await self._catch_up()
                await self._follow_host()
            except Exception as error:
                log.warning("lookup index could not catch up", error=repr(error))
                continue

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
                    await self._thread.run(self._reach(revision))
            except TimeoutError:
                return self.index is not None and self.index.revision >= revision
            except Exception as error:  # the database: keep the bounded wait, report below
                log.warning("lookup index could not catch up on demand", error=repr(error))
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
                continue
            if self.index is not None and self.index.revision < revision:
                await asyncio.sleep(min(WAIT_STEP_S, max(0.0, deadline - time.monotonic())))

    async def _reach(self, revision: int) -> None:
        """On the follower's thread: catch up unless another catch-up already has."""
        async with self._catching_up:
            if self.index is None or self.index.revision < revision:
                await self._refreshed()


RENEW_LOOK_S = 5.0
# About 10 MiB of overlay per worker (a key, its tuple of slots and the dict's entry); a
# snapshot at most every OVERLAY_RENEW_AGE_S while one is that large (an import lasting
# minutes renews it a few times, not with every page).
OVERLAY_RENEW_KEYS = 50_000
OVERLAY_RENEW_AGE_S = 30.0
BUILDS_APART = 4  # a large overlay's renewals: at least this many builds' time apart
RENEW_RETRY_MAX_S = 300.0  # after failed renewals, the next try waits up to this
BUILD_RETRY_MAX_S = 30.0
T = TypeVar("T")


def _in_daemon_thread(work: Callable[..., T], *args: object) -> asyncio.Future[T]:
    """`work` in a thread of its own that a stopping worker does not wait for (a build
    of the host's snapshot takes as long as the database makes it; a half-written
    temporary file is all it leaves)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work(*args)
        except BaseException as error:
            log.warning("lookup snapshot could not be renewed", error=repr(error))
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(settle, partial(future.set_exception, error))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, partial(future.set_result, result))

    threading.Thread(target=run, name="lookup-snapshot-builder", daemon=True).start()
    return future


def _remembered(cache: OrderedDict[Hashable, T], key: Hashable, compute: Callable[[], T]) -> T:
    """`cache[key]`, computed on a miss; the least recently used goes past the size."""
    found = cache.get(key)
    if found is None:
        found = cache[key] = compute()
        if len(cache) > ANSWER_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return found
