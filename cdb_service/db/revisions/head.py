"""The registry head: the one row whose lock orders every writer, the revision it numbers,
and `write_revision`, which takes it and opens one revision for the service.
"""

from __future__ import annotations

import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
)
from contextlib import asynccontextmanager

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db.revisions.tables import RegistryHead, Revision
from cdb_service.db.revisions.writer import RevisionWriter


async def lock_registry(session: AsyncSession, *, allocate: bool) -> int:
    """The first statement of every writing transaction: the registry-wide write lock.

    It updates the single `registry_head` row, whose row lock serialises writers
    (on SQLite the database write lock does). With `allocate` the head moves to
    the next revision and that number is returned (the service's writes). Without,
    the head is locked as it is and returned: a replica's next revision comes
    from its source, not from here.
    """
    new = RegistryHead.revision + 1 if allocate else RegistryHead.revision
    started = time.perf_counter()
    locked = (
        await session.execute(
            update(RegistryHead)
            .where(RegistryHead.id == RevisionWriter.LOCK_ROW)
            .values(revision=new)
            .returning(RegistryHead.revision)
        )
    ).scalar_one()
    # Writers queue on this row: the wait is what concurrent writes cost each other.
    metrics.LOCK_WAIT_SECONDS.observe(time.perf_counter() - started)
    return int(locked)


@asynccontextmanager
async def write_revision(
    sessions: async_sessionmaker[AsyncSession],
    actor: str,
    summary: str | None = None,
    *,
    commit: bool = True,
    before_commit: Callable[[RevisionWriter], Awaitable[None]] | None = None,
    bulk: bool = False,
) -> AsyncIterator[RevisionWriter]:
    """One revision: lock, allocate, let the caller write, then commit or give it back.

    Nothing written (every change turned out to be a no-op) means no revision: the
    transaction is rolled back and the number is reused by the next writer. With
    `commit=False` (a dry run) everything is done and then rolled back. `bulk` is the
    writer's bulk mode (see `RevisionWriter.bulk`), chosen by the caller.
    """
    async with sessions() as session, session.begin():
        # First statement of the transaction: takes the registry-wide write lock.
        revision = await lock_registry(session, allocate=True)
        writer = RevisionWriter(session, actor, revision, bulk=bulk)
        # The revision row comes first: entry versions reference it.
        record = Revision(
            revision=revision,
            committed_at=writer.now,
            actor=actor,
            change_count=0,
            summary=summary,
        )
        session.add(record)
        await session.flush()
        yield writer
        if writer.written:
            await writer.finish()  # a dry run too: constraint violations must show
        if not writer.written or not commit:
            await session.rollback()
            return
        record.change_count = len(writer.written)
        if before_commit is not None:
            await before_commit(writer)
        await session.flush()
        writer.committing = True


async def head_revision(session: AsyncSession) -> int:
    value = await session.scalar(
        select(RegistryHead.revision).where(RegistryHead.id == RevisionWriter.LOCK_ROW)
    )
    return int(value or 0)
