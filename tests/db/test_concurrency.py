"""Gap-free revisions in commit order under concurrent writers, and a reader that misses none."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from sqlalchemy import select

from cdb_service.db.revisions import Revision
from cdb_service.distribution import feed
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

AUTH = KINDS["authorities"]
RETENTION = dt.timedelta(days=30)


async def _run_writers(services: Services, writers: int, writes: int) -> set[str]:
    written: set[str] = set()

    async def writer(w: int) -> None:
        for n in range(writes):
            doc = validate(AUTH, factories.authority(code=f"DE:W{w}-{n}"))
            written.add(((await services.writes.create(AUTH, doc, f"writer-{w}")).document)["id"])

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return written


async def _poll_changes(services: Services, stop: asyncio.Event) -> list[tuple[int, str]]:
    """A feed consumer: asks for what came after the last revision it saw, over and over."""
    seen: list[tuple[int, str]] = []
    last, after_seq = 0, None
    while True:
        done = stop.is_set()
        query = feed.FeedQuery(last, 50, after_seq)
        page = await feed.changes_page(services.sessions, query, RETENTION)
        seen += [(change["revision"], change["id"]) for change in page["changes"]]
        if not page["changes"] and done:
            return seen
        # A page that ends inside a revision goes on with its cursor.
        last = page["next"]
        after_seq = feed.decode_cursor(page["cursor"], since=last) if page["cursor"] else None
        await asyncio.sleep(0)


@pytest.mark.postgres_only
async def test_eight_writers_make_800_consecutive_revisions_and_the_reader_misses_none(
    services: Services,
) -> None:
    stop = asyncio.Event()
    reader = asyncio.create_task(_poll_changes(services, stop))
    written = await _run_writers(services, writers=8, writes=100)
    stop.set()
    seen = await reader

    async with services.sessions() as session:
        rows = (await session.execute(select(Revision.revision, Revision.committed_at))).all()
    revisions = sorted(r.revision for r in rows)
    assert revisions == list(range(1, 801))
    # Revision order is commit order: each revision's commit time is not before its predecessor's.
    by_revision = sorted(rows)
    assert all(a.committed_at <= b.committed_at for a, b in itertools.pairwise(by_revision))

    assert len(seen) == 800, "the reader missed or repeated changes"
    assert [r for r, _ in seen] == list(range(1, 801))
    assert {i for _, i in seen} == written


async def test_concurrent_writers_on_either_database_stay_gap_free(services: Services) -> None:
    written = await _run_writers(services, writers=4, writes=15)
    assert len(written) == 60
    async with services.sessions() as session:
        revisions = sorted((await session.scalars(select(Revision.revision))).all())
    assert revisions == list(range(1, 61))
