"""The change feed: entry versions after a revision, in pages of at most `limit`, long polling.

A page ends inside a revision only when that revision does not fit: then `cursor`
names the place inside it, and `next` stays at the revision before it, the last one
the page (with those before it) gave whole. A follower that applies revisions
atomically holds the changes after `next` until a page without a cursor, or one
whose `next` has reached their revision, completes them; it never applies half a
revision, and a restart (which forgets the cursor) only repeats the fetch.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.db import revisions as rev
from cdb_service.db.revisions import Revision
from cdb_service.kernel.problems import (
    INVALID_CONTENT,
    REVISION_GONE,
    FieldError,
    Problem,
    invalid,
    unknown_cursor,
)
from cdb_service.lookup import gazetteer
from cdb_service.lookup.follower import IndexFollower
from cdb_service.registry.store.reads import change_of
from cdb_service.web.draining import Drain

WAIT_STEP_S = 0.05
MAX_WAIT_S = 60


def gone(since: int) -> Problem:
    return REVISION_GONE(
        f"revision {since} is older than the change feed keeps; take a fresh extract "
        "(GET /api/v1/extract) and follow the feed from its revision",
        extra={"since": since},
    )


async def _retained(session: AsyncSession, since: int, retention: dt.timedelta) -> bool:
    """Whether what came after `since` is still within the feed's reach."""
    following = await session.scalar(
        select(Revision.committed_at).where(Revision.revision == since + 1)
    )
    return following is None or following >= dt.datetime.now(dt.UTC) - retention


async def wait_for_newer(lookup: IndexFollower, sessions: async_sessionmaker[AsyncSession],
                         since: int, seconds: float, drain: Drain) -> None:  # fmt: skip
    """Hold until something newer than `since` commits, `seconds` pass, or the worker
    begins to stop (then the poll answers with what there is, so that the stop need
    not wait for it; the client polls again, at another instance).

    The lookup index follows the head a few times a second in memory, so waiting
    costs no database work; without it (not built yet) the head is read directly.
    A gazetteer load ends the wait too: every page announces the gazetteer's identity,
    and a mirror that long-polls learns of a load as soon as the index does.
    """
    deadline = time.monotonic() + seconds
    gazetteer_at = lookup.index.gazetteer.identity if lookup.index is not None else None
    while time.monotonic() < deadline and not drain.stopping:
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


@dataclass(frozen=True)
class FeedQuery:
    since: int
    limit: int
    after_seq: int | None = None  # from the cursor (`decode_cursor`)
    kinds: Sequence[str] | None = None
    owner: str | None = None


def encode_cursor(revision: int, seq: int) -> str:
    raw = json.dumps({"r": revision, "q": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, since: int) -> int:
    """The `seq` a cursor resumes after; it must continue revision `since + 1`."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        revision, seq = data["r"], data["q"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in (revision, seq)):  # fmt: skip
            raise ValueError("not a position")
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise unknown_cursor() from None
    if revision != since + 1:
        raise invalid([FieldError(
            ("query", "cursor"),
            f"continues revision {revision}: pass it with since={revision - 1}, the `next` "
            "of the page that gave it",
        )])  # fmt: skip
    return int(seq)


async def changes_page(sessions: async_sessionmaker[AsyncSession], query: FeedQuery,
                       retention: dt.timedelta) -> dict[str, Any]:  # fmt: skip
    since, limit, after_seq = query.since, query.limit, query.after_seq
    async with rev.read_snapshot(sessions) as session:
        head = await rev.head_revision(session)
        if since > head:
            raise INVALID_CONTENT(f"since={since} is after the head revision {head}")
        if since < head and not await _retained(session, since, retention):
            raise gone(since)
        # One more than the page holds: it tells whether the page's last revision goes on.
        rows = await rev.versions_from(session, since, limit + 1, after_seq=after_seq,
                                       kinds=query.kinds, owner=query.owner)  # fmt: skip
        changes = [change_of(v) for v in rows[:limit]]
        loads = await gazetteer.loads(session)
    cursor = None
    if len(rows) <= limit:
        # Everything up to the head was looked at (filtered out or on this page).
        last = head
    else:
        following, rows = rows[limit], rows[:limit]
        last = rows[-1].revision
        if following.revision == last:
            # The page ends inside revision `last`: the client has whole only those before.
            cursor = encode_cursor(last, rows[-1].seq)
            last -= 1
    stamps = {load.country: gazetteer.stamp_of(load) for load in loads}
    return {"since": since, "head": head, "next": last, "cursor": cursor,
            "more": cursor is not None or last < head, "changes": changes,
            "gazetteer": gazetteer.identity(stamps)}  # fmt: skip
