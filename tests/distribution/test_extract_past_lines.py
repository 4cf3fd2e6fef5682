"""An extract of the past on PostgreSQL: the database writes its lines
(`extract_sql.as_of_line_sql`), and they hold what the paged reader of the past
(`extracts._entries_then`) gives: each entry's version at R, a deleted one gone, an
entry created after R absent, in id order, one owner's alone when asked."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from cdb_service.db.revisions import read_snapshot
from cdb_service.distribution import extract_sql, extracts
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

pytestmark = pytest.mark.postgres_only
AUTH = KINDS["authorities"]


async def _database(services: Services, revision: int, owner: str | None = None
                    ) -> list[tuple[Any, ...]]:  # fmt: skip
    sql = extract_sql.as_of_line_sql(AUTH, owner is not None)
    arguments = [revision, owner] if owner is not None else [revision]
    async with read_snapshot(services.sessions) as session:
        batches = extract_sql.batches_from_database(session, sql, arguments)
        lines = [json.loads(line) async for batch in batches for line in batch]
    assert all(line["type"] == "entry" and line["kind"] == AUTH.name for line in lines)
    return [(line["id"], line["version"], line["revision"], line["document"]) for line in lines]


async def _python(services: Services, revision: int, owner: str | None = None
                  ) -> list[tuple[Any, ...]]:  # fmt: skip
    async with read_snapshot(services.sessions) as session:
        return [(document["id"], version, last, document) async for document, version, last
                in extracts._entries_then(session, AUTH, owner, revision)]  # fmt: skip


async def test_the_database_writes_the_past_as_the_paged_reader_reads_it(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extracts, "ROWS_PER_FETCH", 2)  # the reader's pages: several
    monkeypatch.setattr(extract_sql, "FIRST_FETCH", 2)  # and the cursor's fetches
    ids = []
    for n in range(5):
        body = factories.authority(code=f"DE:PAST-{n}", names={"de": f'Gericht « {n} » "x"'})
        created = await services.writes.create(AUTH, validate(AUTH, body), "a")
        ids.append(uuid.UUID(str(created.document["id"])))
    before = await services.reads.head()
    renamed = factories.authority(code="DE:PAST-0", names={"de": "Neu"})
    await services.writes.update(AUTH, ids[0], validate(AUTH, renamed), "a")
    await services.writes.delete(AUTH, ids[1], "a")
    await services.writes.create(AUTH, validate(AUTH, factories.authority(code="DE:PAST-9")), "a")
    head = await services.reads.head()

    then, now = await _database(services, before), await _database(services, head)
    assert then == await _python(services, before)
    assert now == await _python(services, head)
    assert [entry[0] for entry in then] == sorted(str(i) for i in ids)  # id order, all five
    codes_then = {entry[3]["code"]: (entry[1], entry[3]["names"]) for entry in then}
    assert codes_then["DE:PAST-0"] == (1, {"de": 'Gericht « 0 » "x"'})
    codes_now = {entry[3]["code"]: (entry[1], entry[3]["names"]) for entry in now}
    assert "DE:PAST-1" not in codes_now and "DE:PAST-9" in codes_now
    assert codes_now["DE:PAST-0"] == (2, {"de": "Neu"})
    assert await _database(services, head, "DE") == now
    assert await _database(services, head, "FR") == []
