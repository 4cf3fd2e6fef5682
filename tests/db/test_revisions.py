"""The revision mechanism, through the service layer, on both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from cdb_service.db.revisions import EntryVersion, Revision
from cdb_service.distribution import feed
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

AUTH = KINDS["authorities"]
RETENTION = dt.timedelta(days=30)


async def test_create_update_delete_each_make_one_revision_and_version(services: Services) -> None:
    reads, writes = services.reads, services.writes
    created = (await writes.create(AUTH, validate(AUTH, factories.authority()), "alice")).document
    entry_id = created["id"]
    assert (created["version"], created["revision"]) == (1, 1)

    renamed = factories.authority(names={"de": "Amtsgericht Zwei"})
    updated = await writes.update(AUTH, _uuid(entry_id), validate(AUTH, renamed), "bob", 1)
    assert (updated["version"], updated["revision"]) == (2, 2)

    deleted = await writes.delete(AUTH, _uuid(entry_id), "carol", 2)
    assert (deleted["version"], deleted["revision"]) == (3, 3)
    assert await reads.head() == 3
    assert await reads.get(AUTH, _uuid(entry_id)) is None

    history = await reads.history(_uuid(entry_id))
    assert [(h["version"], h["operation"], h["actor"]) for h in history] == [
        (3, "delete", "carol"),
        (2, "update", "bob"),
        (1, "create", "alice"),
    ]
    # Point in time: each past revision returns exactly the state it had.
    assert (await reads.get(AUTH, _uuid(entry_id), revision=1))["names"] == {
        "de": "Amtsgericht Eins",
        "en": "Local Court One",
    }
    assert (await reads.get(AUTH, _uuid(entry_id), revision=2))["names"] == {
        "de": "Amtsgericht Zwei"
    }
    assert await reads.get(AUTH, _uuid(entry_id), revision=3) is None
    assert await reads.get(AUTH, _uuid(entry_id), revision=0) is None


async def test_collection_as_of_revision_and_valid_at(services: Services) -> None:
    reads, writes = services.reads, services.writes
    future = factories.authority(code="DE:NEW", valid_from="2027-01-01")
    retired = factories.authority(code="DE:OLD", valid_to="2026-12-31")
    await writes.create(AUTH, validate(AUTH, retired), "a")
    await writes.create(AUTH, validate(AUTH, future), "a")

    def codes(page: object) -> list[str]:
        return sorted(item["code"] for item in page.items)  # type: ignore[attr-defined]

    assert codes(await reads.collection(AUTH)) == ["DE:NEW", "DE:OLD"]
    assert codes(await reads.collection(AUTH, revision=1)) == ["DE:OLD"]
    assert codes(await reads.collection(AUTH, valid_at=dt.date(2026, 12, 31))) == ["DE:OLD"]
    assert codes(await reads.collection(AUTH, valid_at=dt.date(2027, 1, 1))) == ["DE:NEW"]
    assert codes(await reads.collection(AUTH, revision=2, valid_at=dt.date(2027, 6, 1))) == [
        "DE:NEW"
    ]
    assert (await reads.collection(AUTH, revision=1)).revision == 1


async def test_pagination_by_id_walks_every_entry_once(services: Services) -> None:
    reads, writes = services.reads, services.writes
    for n in range(7):
        await writes.create(AUTH, validate(AUTH, factories.authority(code=f"DE:C{n}")), "a")
    seen: list[str] = []
    after = None
    while True:
        page = await reads.collection(AUTH, after=after, limit=3)
        seen += [item["code"] for item in page.items]
        if page.next is None:
            break
        after = page.next
    assert sorted(seen) == [f"DE:C{n}" for n in range(7)]


async def test_a_page_inside_a_revision_never_reports_it_whole(services: Services) -> None:
    from cdb_service.registry.store.batch_items import BatchItem

    writes, batches = services.writes, services.batches
    await writes.create(AUTH, validate(AUTH, factories.authority(code="DE:A")), "a")
    batch = [
        BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:B{n}")), n)
        for n in range(5)
    ]
    result = await batches.apply(batch, "importer")
    assert result.revision == 2
    first = await feed.changes_page(services.sessions, feed.FeedQuery(0, 2), RETENTION)
    # The limit falls inside revision 2: the page holds part of it, says so with a cursor,
    # and `next` stays at the last revision it holds whole.
    assert [c["revision"] for c in first["changes"]] == [1, 2]
    assert first["next"] == 1 and first["cursor"] and first["more"]
    after_seq = feed.decode_cursor(first["cursor"], since=1)
    rest = await feed.changes_page(services.sessions, feed.FeedQuery(1, 10, after_seq), RETENTION)
    assert [c["revision"] for c in rest["changes"]] == [2, 2, 2, 2]
    assert rest["next"] == 2 and rest["cursor"] is None and not rest["more"]
    done = await feed.changes_page(services.sessions, feed.FeedQuery(2, 10), RETENTION)
    assert done["changes"] == []


async def test_batch_is_one_revision_and_a_no_op_batch_is_none(services: Services) -> None:
    from cdb_service.registry.store.batch_items import BatchItem

    batches = services.batches
    items = [
        BatchItem.of(
            KINDS["routing-parties"],
            validate(KINDS["routing-parties"], factories.routing_party()),
            1,
        ),
        BatchItem.of(AUTH, validate(AUTH, factories.authority(routing_party_name="de-ap")), 2),
        BatchItem.of(
            KINDS["jurisdiction-criteria"],
            validate(KINDS["jurisdiction-criteria"], factories.criterion()),
            3,
        ),
    ]
    first = await batches.apply(items, "importer")
    assert first.revision == 1
    assert first.counts()["created"] == 3
    again = await batches.apply(items, "importer")
    assert again.revision is None
    assert again.counts()["unchanged"] == 3
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Revision)) == 1
        assert await session.scalar(select(func.count()).select_from(EntryVersion)) == 3


def _uuid(value: str):  # type: ignore[no-untyped-def]
    import uuid

    return uuid.UUID(value)
