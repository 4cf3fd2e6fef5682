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
    func,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
    latest = (
        select(EntryVersion.entry_id, func.max(EntryVersion.version).label("version"))
        .where(EntryVersion.kind == kind, EntryVersion.revision <= revision)
        .group_by(EntryVersion.entry_id)
        .subquery()
    )
    query = (
        select(EntryVersion)
        .join(
            latest,
            and_(
                EntryVersion.entry_id == latest.c.entry_id,
                EntryVersion.version == latest.c.version,
            ),
        )
        .where(EntryVersion.operation != Operation.DELETE.value)
        .order_by(EntryVersion.entry_id)
    )
    if owner is not None:
        query = query.where(EntryVersion.owner == owner)
    if valid_at is not None:
        query = query.where(valid_on(EntryVersion, valid_at))
    if after is not None:
        query = query.where(EntryVersion.entry_id > after)
    if limit is not None:
        query = query.limit(limit)
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
