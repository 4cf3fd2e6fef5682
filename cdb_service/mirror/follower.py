"""The sync loop: take an extract when needed, follow the feed, re-extract when it breaks.

A 410 (the feed no longer reaches back to the mirror's revision), a 422 (the
mirror's revision is after the source's head: the source was restored from an
older backup) and a change that does not fit the mirror's rows (`Diverged`) all
end in a fresh extract. An unreachable or refusing source is retried, never fatal;
a database that is not a mirror is (`ForeignDatabase`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx

from cdb_service import outbound
from cdb_service.db.base import utcnow
from cdb_service.logging import get_logger
from cdb_service.lookup import follower as lookup
from cdb_service.mirror import gazetteer as mirror_gazetteer
from cdb_service.mirror.config import MirrorConfig
from cdb_service.mirror.errors import Diverged, ExtractRefused, FeedGone, ForeignDatabase
from cdb_service.mirror.source import SourceClient
from cdb_service.mirror.store import ReplicaStore

log = get_logger("cdb.mirror")


@dataclass
class Status:
    """What the mirror's `/health/ready` reports."""

    source_head: int | None = None
    last_contact: dt.datetime | None = None
    last_error: str | None = None
    extracts: int = 0
    # The source's gazetteer identity as last announced, and the mirror's copy of it.
    gazetteer_source: str | None = None
    gazetteer_local: str | None = None
    # Why the mirror trusts the copy it serves, None until it does (`mirror/readiness.py`):
    # it caught up with the source since it started, or cannot reach it and serves its own.
    settled: str | None = None


@dataclass
class Follower:
    config: MirrorConfig
    store: ReplicaStore
    client: SourceClient
    # With `--serve`: the lookup index the local resolve routes answer from.
    index: lookup.IndexFollower | None = None
    status: Status = field(default_factory=Status)
    # A revision larger than a feed page: the part received so far, the feed's `next`
    # before it and the cursor to the rest. Applied only once whole; kept in memory
    # only, so a restart fetches it again from the mirror's head.
    _held: list[dict[str, Any]] = field(default_factory=list)
    _held_after: int | None = None
    _cursor: str | None = None

    def _forget_held(self) -> None:
        self._held, self._held_after, self._cursor = [], None, None

    async def sync_once(self, wait: float = 0) -> int:
        """Extract if needed, then one page of the feed; returns the mirror's head."""
        if await self.store.needs_extract():
            return await self.reextract()
        head, _ = await self.store.local_state()
        if self._cursor is not None and self._held_after is not None and self._held_after >= head:
            since, cursor = self._held_after, self._cursor
        else:
            self._forget_held()
            since, cursor = head, None
        try:
            page = await self.client.changes(since, wait, cursor)
        except FeedGone as gone:
            log.warning("re-extracting", reason=str(gone), head=head)
            return await self.reextract()
        self._contact(int(page["head"]))
        whole_through = int(page["next"])
        changes = [*self._held, *page["changes"]]
        self._forget_held()
        if page.get("cursor"):
            self._held = [c for c in changes if int(c["revision"]) > whole_through]
            self._held_after, self._cursor = whole_through, str(page["cursor"])
            changes = [c for c in changes if int(c["revision"]) <= whole_through]
        for revision, group in itertools.groupby(changes, key=lambda c: c["revision"]):
            try:
                await self.store.apply_revision(head, int(revision), list(group))
            except Diverged as error:
                self._forget_held()
                log.warning("the mirror diverged; re-extracting", reason=str(error),
                            revision=revision)  # fmt: skip
                return await self.reextract()
            head = int(revision)
            if self.config.apply_delay_s:
                await asyncio.sleep(self.config.apply_delay_s)
        await self._follow_gazetteer(page.get("gazetteer"))
        await self._refresh_index()
        if head >= int(page["head"]) and self.status.settled is None:
            # Registry and gazetteer are the source's, and the index serves them.
            self.status.settled = f"caught up with the source at revision {head}"
            log.info("mirror caught up; answering", revision=head)
        return head

    async def sync(self) -> int:
        """Apply pages until nothing more is waiting (the source's head as last seen)."""
        while True:
            head = await self.sync_once()
            source = self.status.source_head
            if source is not None and head >= source:
                return head

    async def reextract(self) -> int:
        """A fresh extract, streamed into the database; the old copy stays if it is refused."""
        self._forget_held()
        async with self.client.extract() as lines:
            loaded = await self.store.load_extract(lines, self.client.jwks)
        self.status.extracts += 1
        self._contact(loaded.revision)
        log.info("extract applied", revision=loaded.revision, entries=loaded.entries,
                 detail=loaded.detail)  # fmt: skip
        if self.index is not None:
            await self.index.rebuild()
        return loaded.revision

    async def _follow_gazetteer(self, announced: str | None) -> None:
        """Copy the source's gazetteer when the feed announces one the mirror lacks."""
        if announced is None:  # a source from before gazetteers were published
            return
        self.status.gazetteer_source = announced
        if self.status.gazetteer_local is None:
            self.status.gazetteer_local = await mirror_gazetteer.local_identity(self.store.sessions)
        if self.status.gazetteer_local != announced:
            self.status.gazetteer_source = await mirror_gazetteer.follow(
                self.store.sessions, self.client
            )
            self.status.gazetteer_local = await mirror_gazetteer.local_identity(self.store.sessions)

    def _contact(self, source_head: int) -> None:
        self.status.source_head = source_head
        self.status.last_contact = utcnow()
        self.status.last_error = None

    async def _serve_own_copy(self) -> None:
        """The source cannot be reached: a whole copy held (an extract applied, each
        revision since verified) is served rather than nothing, the mirror's purpose
        while the central service is down. A copy not whole stays unserved."""
        if self.status.settled is not None:
            return
        with contextlib.suppress(Exception):  # the mirror's own database: not yet then
            if not await self.store.needs_extract():
                head, _ = await self.store.local_state()
                self.status.settled = f"the source is unreachable; serving the copy at {head}"
                log.warning("the source is unreachable; serving the copy held", revision=head)

    async def _refresh_index(self) -> None:
        if self.index is not None:
            await self.index.refresh()

    async def run(self) -> None:
        """Follow the source until cancelled; an unreachable source is retried, never fatal."""
        delay = min(self.config.poll_s, 5.0)
        while True:
            try:
                # Until it has caught up, the mirror answers nothing: no long poll then.
                await self.sync_once(wait=self.config.poll_s if self.status.settled else 0)
                continue
            except (ForeignDatabase, asyncio.CancelledError):
                raise
            except ExtractRefused as error:
                log.error("extract refused; nothing applied", reason=str(error))
                self.status.last_error = f"extract refused: {error}"
            except httpx.HTTPStatusError as error:
                log.warning("the source refused", status=error.response.status_code,
                            url=str(error.request.url))  # fmt: skip
                self.status.last_error = f"HTTP {error.response.status_code}"
                if error.response.status_code >= 500:  # the source is down or restarting
                    await self._serve_own_copy()
            except outbound.TokenRefused as error:
                log.warning("no token from the issuer", error=str(error))
                self.status.last_error = f"no token: {error}"
            except (httpx.HTTPError, OSError) as error:
                log.warning("the source is unreachable", error=repr(error))
                self.status.last_error = repr(error)
                await self._serve_own_copy()
            with contextlib.suppress(Exception):
                await self._refresh_index()  # e.g. a gazetteer loaded meanwhile
            await asyncio.sleep(delay)
