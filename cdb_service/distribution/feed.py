"""The change feed: entry versions after a revision, whole revisions per page, long polling."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.db.revisions import Revision
from cdb_service.kernel.problems import Problem
from cdb_service.lookup import gazetteer
from cdb_service.lookup.index import IndexFollower
from cdb_service.registry.reads import change_of

WAIT_STEP_S = 0.05
MAX_WAIT_S = 60


def gone(since: int) -> Problem:
    return Problem(
        410,
        "Gone",
        f"revision {since} is older than the change feed keeps; take a fresh extract "
        "(GET /api/v1/extract) and follow the feed from its revision",
        "revision-gone",
        extra={"since": since},
    )


async def _retained(session: AsyncSession, since: int, retention: dt.timedelta) -> bool:
    """Whether what came after `since` is still within the feed's reach."""
    following = await session.scalar(
        select(Revision.committed_at).where(Revision.revision == since + 1)
    )
    return following is None or following >= dt.datetime.now(dt.UTC) - retention


async def wait_for_newer(lookup: IndexFollower, sessions: async_sessionmaker[AsyncSession],
                         since: int, seconds: float) -> None:  # fmt: skip
    """Hold until something newer than `since` commits, or `seconds` pass.

    The lookup index follows the head a few times a second in memory, so waiting
    costs no database work; without it (not built yet) the head is read directly.
    A gazetteer load ends the wait too: every page announces the gazetteer's identity,
    and a mirror that long-polls learns of a load as soon as the index does.
    """
    deadline = time.monotonic() + seconds
    gazetteer_at = lookup.index.gazetteer.identity if lookup.index is not None else None
    while time.monotonic() < deadline:
        index = lookup.index
        if index is not None:
            if index.revision > since or (
                gazetteer_at is not None and index.gazetteer.identity != gazetteer_at
            ):
                return
        else:
            async with sessions() as session:
                if await rev.head_revision(session) > since:
                    return
        await asyncio.sleep(WAIT_STEP_S)


async def changes_page(sessions: async_sessionmaker[AsyncSession], since: int, limit: int,
                       retention: dt.timedelta) -> dict[str, Any]:  # fmt: skip
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        if since > head:
            raise Problem(
                422,
                "Invalid content",
                f"since={since} is after the head revision {head}",
                "invalid-content",
            )
        if since < head and not await _retained(session, since, retention):
            raise gone(since)
        changes = [change_of(v) for v in await rev.changes_after(session, since, limit)]
        loads = await gazetteer.loads(session)
    last = changes[-1]["revision"] if changes else since
    stamps = {load.country: gazetteer.stamp_of(load) for load in loads}
    return {"since": since, "head": head, "next": last, "more": last < head, "changes": changes,
            "gazetteer": gazetteer.identity(stamps)}  # fmt: skip
