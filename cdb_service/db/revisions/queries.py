"""Reads of the history: one snapshot, an entry or a collection as of a revision, an entry's
history, and the versions after a revision (the change feed and every follower).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import (
    AsyncIterator,
    Iterable,
    Sequence,
)
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    and_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from cdb_service.db.revisions.tables import EntryVersion, Operation


@asynccontextmanager
async def read_snapshot(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A read-only transaction that sees one snapshot: the head and the rows agree."""
    async with sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        yield session


def valid_on(model: Any, day: dt.date) -> Any:
    """Legal validity: both bounds inclusive, either may be open."""
    return and_(
        or_(model.valid_from.is_(None), model.valid_from <= day),
        or_(model.valid_to.is_(None), model.valid_to >= day),
    )


async def version_as_of(
    session: AsyncSession, entry_id: uuid.UUID, revision: int
) -> EntryVersion | None:
    """The entry's last version at or before `revision`; None if it did not exist then."""
    found = await session.scalar(
        select(EntryVersion)
        .where(EntryVersion.entry_id == entry_id, EntryVersion.revision <= revision)
        .order_by(EntryVersion.version.desc())
        .limit(1)
    )
    if found is None or found.operation == Operation.DELETE:
        return None
    return found


def collection_as_of_query(
    kind: str,
    revision: int,
    *,
    owner: str | None = None,
    valid_at: dt.date | None = None,
    after: uuid.UUID | None = None,
    limit: int | None = None,
) -> Any:
    """The statement behind `collection_as_of` (tests read its plan).

    Shaped so that its cost follows the page, not the registry, under every plan
    PostgreSQL may choose for it: a walk of the (kind, entry_id, version) index from
    `after`, keeping a version when no later version of the entry is at or before
    `revision` (an index probe per row). A "latest version per entry" aggregate
    over the whole kind, joined back, read every version of the kind for every page,
    and once the prepared statement went generic, a nested loop removed hundreds of
    millions of rows (44.9 s for a page the custom plan answered in 39 ms).
    """
    later = aliased(EntryVersion)
    newer = [
        later.kind == kind,
        later.entry_id == EntryVersion.entry_id,
        later.version > EntryVersion.version,
        later.revision <= revision,
    ]
    wanted = [EntryVersion.kind == kind, EntryVersion.revision <= revision,
              EntryVersion.operation != Operation.DELETE.value]  # fmt: skip
    if owner is not None:
        wanted.append(EntryVersion.owner == owner)
    if valid_at is not None:
        wanted.append(valid_on(EntryVersion, valid_at))
    if after is not None:
        # Said of both sides: PostgreSQL does not carry `>` across the join, and the
        # later-version side would otherwise be read from the first entry on (a merge
        # anti join touched every version before the page: a full walk was quadratic).
        wanted.append(EntryVersion.entry_id > after)
        newer.append(later.entry_id > after)
    superseded = select(later.version).where(*newer).exists()
    query = select(EntryVersion).where(*wanted, ~superseded).order_by(EntryVersion.entry_id)
    return query if limit is None else query.limit(limit)


async def collection_as_of(
    session: AsyncSession,
    kind: str,
    revision: int,
    *,
    owner: str | None = None,
    valid_at: dt.date | None = None,
    after: uuid.UUID | None = None,
    limit: int | None = None,
) -> Sequence[EntryVersion]:
    """The live entries of a kind as they stood at `revision`, in id order."""
    query = collection_as_of_query(
        kind, revision, owner=owner, valid_at=valid_at, after=after, limit=limit
    )
    return (await session.scalars(query)).all()


async def history(session: AsyncSession, entry_id: uuid.UUID) -> Sequence[EntryVersion]:
    """Every version of an entry, newest first (deleted entries included)."""
    return (
        await session.scalars(
            select(EntryVersion)
            .where(EntryVersion.entry_id == entry_id)
            .order_by(EntryVersion.version.desc())
        )
    ).all()


async def changes_after(
    session: AsyncSession, revision: int, limit: int, kinds: Iterable[str] | None = None
) -> Sequence[EntryVersion]:
    """Entry versions after `revision` in revision order; a revision is never split.

    The page holds at least `limit` versions' worth of whole revisions, so a batch
    larger than `limit` comes as one (larger) page rather than half of it.
    """
    base = select(EntryVersion).where(EntryVersion.revision > revision)
    if kinds is not None:
        base = base.where(EntryVersion.kind.in_(list(kinds)))
    page = base.subquery()
    boundary = await session.scalar(
        select(page.c.revision).order_by(page.c.revision, page.c.seq).offset(limit - 1).limit(1)
    )
    query = base.order_by(EntryVersion.revision, EntryVersion.seq)
    if boundary is not None:
        query = query.where(EntryVersion.revision <= boundary)
    return (await session.scalars(query)).all()


async def versions_from(
    session: AsyncSession,
    since: int,
    count: int,
    *,
    after_seq: int | None = None,
    kinds: Iterable[str] | None = None,
    owner: str | None = None,
) -> Sequence[EntryVersion]:
    """Up to `count` entry versions after revision `since`, in revision order.

    `after_seq` resumes inside revision `since + 1` after the version with that `seq`
    (the change feed's cursor within a revision too large for one page).
    """
    query = select(EntryVersion).where(EntryVersion.revision > since)
    if after_seq is not None:
        query = query.where(or_(EntryVersion.revision > since + 1, EntryVersion.seq > after_seq))
    if kinds is not None:
        query = query.where(EntryVersion.kind.in_(list(kinds)))
    if owner is not None:
        query = query.where(EntryVersion.owner == owner)
    query = query.order_by(EntryVersion.revision, EntryVersion.seq).limit(count)
    return (await session.scalars(query)).all()


async def stream_written_in(session: AsyncSession, revision: int) -> AsyncIterator[Any]:
    """What one revision wrote, in the order it wrote it: (kind, entry id, version,
    operation) rows, without the documents, streamed (a batch may be large)."""
    rows = await session.stream(
        select(
            EntryVersion.kind, EntryVersion.entry_id, EntryVersion.version,
            EntryVersion.operation,
        )
        .where(EntryVersion.revision == revision)
        .order_by(EntryVersion.seq)
        .execution_options(yield_per=1000)
    )  # fmt: skip
    async for row in rows:
        yield row
