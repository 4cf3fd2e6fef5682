"""A write that fails leaves nothing behind: no revision, no entry version, no partial rows."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from cdb_service.kernel.problems import Problem
from cdb_service.metadata import metadata
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.batch_items import BatchItem
from cdb_service.registry.store.validation import validate
from cdb_service.security.audit import AuditEvent
from cdb_service.services import Services
from tests.support import factories

AUTH, CRIT, PARTY = KINDS["authorities"], KINDS["jurisdiction-criteria"], KINDS["routing-parties"]


AUDIT_TABLES = {"audit_events", "audit_head"}


async def _row_counts(services: Services) -> dict[str, int]:
    """Rows of every registry table (the audit trail records refusals, so it is apart)."""
    async with services.sessions() as session:
        return {
            table.name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
            if table.name not in AUDIT_TABLES
        } | {"head": await services.reads.head()}


async def _seed_one(services: Services) -> None:
    await services.writes.create(PARTY, validate(PARTY, factories.routing_party()), "a")
    await services.writes.create(AUTH, validate(AUTH, factories.authority()), "a")


async def test_duplicate_code_is_409_and_writes_nothing(services: Services) -> None:
    await _seed_one(services)
    before = await _row_counts(services)
    with pytest.raises(Problem) as caught:
        await services.writes.create(AUTH, validate(AUTH, factories.authority()), "a")
    assert caught.value.status == 409
    assert await _row_counts(services) == before
    async with services.sessions() as session:
        last = await session.scalar(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1))
    assert last is not None
    assert (last.action, last.outcome, last.subject) == ("create authorities", "rejected-409", "a")


async def test_unknown_reference_is_422_naming_the_field_and_writes_nothing(
    services: Services,
) -> None:
    await _seed_one(services)
    before = await _row_counts(services)
    doc = validate(CRIT, factories.criterion(authority_code="DE:NOPE"))
    with pytest.raises(Problem) as caught:
        await services.writes.create(CRIT, doc, "a")
    assert caught.value.status == 422
    assert caught.value.errors[0].loc == ("authority_code",)
    assert await _row_counts(services) == before


async def test_batch_with_one_bad_entry_at_the_end_writes_nothing(services: Services) -> None:
    await _seed_one(services)
    before = await _row_counts(services)
    good = [
        BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:X{n}")), n)
        for n in range(1, 50)
    ]
    bad = BatchItem.of(CRIT, validate(CRIT, factories.criterion(authority_code="DE:MISSING")), 50)
    with pytest.raises(Problem) as caught:
        await services.batches.apply([*good, bad], "importer")
    assert caught.value.status == 422
    assert [e.loc[:2] for e in caught.value.errors] == [("line", 50)]
    assert await _row_counts(services) == before


async def test_delete_of_a_referenced_entry_is_409_and_writes_nothing(services: Services) -> None:
    await _seed_one(services)
    await services.writes.create(CRIT, validate(CRIT, factories.criterion()), "a")
    authority = (await services.reads.collection(AUTH)).items[0]
    before = await _row_counts(services)
    with pytest.raises(Problem) as caught:
        await services.writes.delete(AUTH, uuid.UUID(authority["id"]), "a")
    assert caught.value.status == 409
    assert await _row_counts(services) == before


async def test_stale_version_is_412_and_writes_nothing(services: Services) -> None:
    await _seed_one(services)
    authority = (await services.reads.collection(AUTH)).items[0]
    before = await _row_counts(services)
    doc = validate(AUTH, factories.authority(names={"en": "Renamed"}))
    with pytest.raises(Problem) as caught:
        await services.writes.update(AUTH, uuid.UUID(authority["id"]), doc, "a", expected_version=7)
    assert caught.value.status == 412
    assert await _row_counts(services) == before


async def test_moving_an_entry_to_another_owner_is_refused(services: Services) -> None:
    await _seed_one(services)
    authority = (await services.reads.collection(AUTH)).items[0]
    before = await _row_counts(services)
    doc = validate(AUTH, factories.authority(owner="FR", code="FR:COURT-1"))
    with pytest.raises(Problem) as caught:
        await services.writes.update(AUTH, uuid.UUID(authority["id"]), doc, "a")
    assert caught.value.status == 422
    assert caught.value.errors[0].loc == ("owner",)
    assert await _row_counts(services) == before


async def test_reference_to_another_owners_authority_is_refused(services: Services) -> None:
    await _seed_one(services)
    doc = validate(
        CRIT,
        factories.criterion(
            owner="FR",
            ref="x",
            geo=[{"scheme": "country", "code": "FR"}],
            authority_code="DE:COURT-1",
        ),
    )
    with pytest.raises(Problem) as caught:
        await services.writes.create(CRIT, doc, "a")
    assert caught.value.errors[0].loc == ("authority_code",)
    assert "must belong to FR" in caught.value.errors[0].msg
