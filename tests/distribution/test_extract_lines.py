"""The extract's entry lines are the same bytes whoever writes them: on PostgreSQL the
database writes them (`_line_sql`), elsewhere Python does (`_lines_now`). A connector that
compares a new extract with its last one, or checks a line's chain against a saved copy,
must not see a difference that is only the writer's."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from cdb_service.db.revisions import read_snapshot
from cdb_service.distribution import extract_sql, extracts
from cdb_service.registry.kinds import KINDS
from cdb_service.registry.store.validation import validate
from cdb_service.services import Services
from tests.support import factories

AUTH = KINDS["authorities"]
WINDOWS = KINDS["maintenance-windows"]
# What json.dumps escapes (and what it leaves): quotes, backslashes, control characters,
# a character beyond the BMP, a line separator, DEL, HTML-ish text, an apostrophe.
AWKWARD = 'Tribunal "d\'appel" \\ de\tParis\nÂ\u00e9\u2028\x7f\x01\x1f </script> 𝄞 \u00a0'


async def _python_lines(services: Services, kind: Any) -> list[bytes]:
    async with read_snapshot(services.sessions) as session:
        return [text.encode() async for text in extracts._lines_now(session, kind, None)]


async def _database_lines(services: Services, kind: Any, owner: str | None = None
                          ) -> list[bytes]:  # fmt: skip
    sql = extract_sql.line_sql(kind, owner is not None)
    assert sql is not None, f"every column of {kind.name} has an SQL encoding"
    async with read_snapshot(services.sessions) as session:
        batches = extract_sql.batches_from_database(session, sql, [owner] if owner else [])
        return [line async for batch in batches for line in batch]


@pytest.mark.postgres_only
async def test_postgres_writes_every_kinds_lines_as_python_does(services: Services) -> None:
    for n in range(3):
        names = {"de": f"Gericht {n}", "fr": "Tribunal « ü »"}
        document = factories.authority(code=f"DE:AWK-{n}", names=names)
        await services.writes.create(AUTH, validate(AUTH, document), "a")
    # Values the API refuses (control characters) or rarely makes (a whole second), set in
    # the database: the encodings must agree on them too.
    table: Any = AUTH.model.__table__
    async with services.sessions() as session, session.begin():
        await session.execute(update(table).where(table.c.code == "DE:AWK-0").values(
            ref=AWKWARD, valid_from=dt.date(2027, 3, 1), valid_to=dt.date(999, 1, 2),
            created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
            updated_at=dt.datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=dt.UTC)))  # fmt: skip
        await session.execute(update(table).where(table.c.code == "DE:AWK-1").values(
            names={"de": AWKWARD, "en": None, "x": [1, 2.5, True, {"k": "\u00e9"}]}))  # fmt: skip
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=60)
    window = {
        "owner": "DE",
        "component": "api",
        "starts_at": start.isoformat(),
        "ends_at": (start + dt.timedelta(hours=2)).isoformat(),
        "reason": 'Wartung « ü » "x" \\',
    }
    await services.writes.create(WINDOWS, validate(WINDOWS, window), "a")
    windows: Any = WINDOWS.model.__table__
    async with services.sessions() as session, session.begin():
        await session.execute(update(windows).values(reason=AWKWARD, cancelled=True))
    criteria = KINDS["jurisdiction-criteria"]
    criterion = factories.criterion(authority_code="DE:AWK-2")
    await services.writes.create(criteria, validate(criteria, criterion), "a")
    compared = 0
    for kind in KINDS.values():
        if kind.private_fields:
            continue  # their lines go through the reader's redaction, never the database's
        database = await _database_lines(services, kind)
        assert database == await _python_lines(services, kind), kind.name
        compared += len(database)
        for line in database:
            json.loads(line)
    assert compared >= 5
    assert await _database_lines(services, AUTH, "FR") == []
    by_owner = await _database_lines(services, AUTH, "DE")
    assert len(by_owner) == 3 and json.loads(by_owner[0])["document"]["ref"] in (AWKWARD, None)


@pytest.mark.postgres_only
async def test_a_large_kind_comes_in_fetches_and_whole(services: Services, monkeypatch: Any
                                                       ) -> None:  # fmt: skip
    """More lines than a fetch holds: every one arrives once, in order, chained as before."""
    monkeypatch.setattr(extract_sql, "FIRST_FETCH", 3)
    monkeypatch.setattr(extract_sql, "FETCH_BYTES", 2000)  # a few lines a fetch
    from cdb_service.registry.store.batch_items import BatchItem

    items = [BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:M{n:03d}")), n)
             for n in range(150)]  # fmt: skip
    await services.batches.apply(items, "importer")
    database = await _database_lines(services, AUTH)
    assert database == await _python_lines(services, AUTH)
    assert len(database) == 150


@pytest.mark.postgres_only
async def test_a_reader_that_leaves_early_leaves_the_connection_usable(
    services: Services, monkeypatch: Any
) -> None:
    """A client that hangs up mid-extract: the fetch already asked for is finished, and
    the snapshot's connection answers the next statement (it goes back to the pool)."""
    monkeypatch.setattr(extract_sql, "FIRST_FETCH", 2)
    from cdb_service.registry.store.batch_items import BatchItem

    items = [BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:L{n:03d}")), n)
             for n in range(40)]  # fmt: skip
    await services.batches.apply(items, "importer")
    sql = extract_sql.line_sql(AUTH, False)
    assert sql is not None
    async with read_snapshot(services.sessions) as session:
        batches = extract_sql.batches_from_database(session, sql)
        first = await anext(batches)  # the first fetch; the second is asked for
        await batches.aclose()
        assert len(first) == 2
        assert await session.scalar(select(func.count()).select_from(AUTH.model)) == 40
    assert len(await _database_lines(services, AUTH)) == 40


@pytest.mark.postgres_only
async def test_an_extract_left_early_gives_its_connection_back_whole(
    services: Services, monkeypatch: Any
) -> None:
    """A connector that hangs up in the middle of an extract: the fetch under way ends
    before the snapshot's transaction is rolled back, on every connection of the pool,
    and the next extract is whole."""
    monkeypatch.setattr(extract_sql, "FIRST_FETCH", 2)
    from cdb_service.registry.store.batch_items import BatchItem

    items = [BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:E{n:03d}")), n)
             for n in range(40)]  # fmt: skip
    await services.batches.apply(items, "importer")
    keys = services.signing
    request = extracts.ExtractRequest(kinds=[AUTH])
    for _ in range(services.engine.pool.size() + 1):  # each connection of the pool, and again
        stream = extracts.stream_extract(services.sessions, keys, request)
        await anext(stream)  # the snapshot line
        written = await anext(stream)  # the first fetch's lines; the second is asked for
        assert written.count(b"\n") == 2
        await stream.aclose()
    whole = b"".join([w async for w in extracts.stream_extract(services.sessions, keys, request)])
    assert whole.count(b'{"type":"entry"') == 40


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", ()) for node in _nodes(child))]


@pytest.mark.postgres_only
async def test_the_database_writes_each_line_as_its_row_comes_out(services: Services) -> None:
    """No kind's lines are sorted once written. With the sort above the line's expression,
    PostgreSQL wrote a whole kind's text (60 MB, spilled to disk, at 1,000,000 geo keys)
    before it sent the first line, and the service only began chaining when it was done;
    now the rows are put in order, and each line is written as its row comes out. Index
    scans are turned off here so that the plan has to sort."""
    from cdb_service.registry.store.batch_items import BatchItem

    items = [BatchItem.of(AUTH, validate(AUTH, factories.authority(code=f"DE:S{n:03d}")), n)
             for n in range(50)]  # fmt: skip
    await services.batches.apply(items, "importer")
    checked = 0
    async with services.sessions() as session, session.begin():
        await session.execute(text("SET LOCAL enable_indexscan = off"))
        await session.execute(text("SET LOCAL enable_bitmapscan = off"))
        for kind in KINDS.values():
            for by_owner in (False, True):
                sql = extract_sql.line_sql(kind, by_owner)
                assert sql is not None, kind.name
                explained = await session.scalar(
                    text("EXPLAIN (VERBOSE, FORMAT JSON) " + sql.replace("$1", "'DE'"))
                )
                nodes = _nodes(json.loads(explained)[0]["Plan"] if isinstance(explained, str)
                               else explained[0]["Plan"])  # fmt: skip
                sorts = [node for node in nodes if "Sort" in node["Node Type"]]
                assert sorts, f"{kind.name}: the plan was meant to sort"
                for node in sorts:
                    written = " ".join(node.get("Output", ()))
                    assert "convert_to" not in written, f"{kind.name} sorts its written lines"
                checked += 1
    assert checked == 2 * len(KINDS)


async def test_a_fetch_is_chained_alike_on_the_loop_and_in_a_thread(monkeypatch: Any) -> None:
    """Short lines are chained on the loop, a few at a time; long ones (a criterion's
    thousands of geo keys) a fetch at a time in a worker thread. Both give the bytes, the
    chain, the count and the digest that Python's writing of the same lines gives."""
    monkeypatch.setattr(extracts, "FLUSH_BYTES", 100)  # several writes of the short lines
    threaded: list[int] = []
    to_thread = asyncio.to_thread

    async def spy(work: Any, bodies: list[bytes]) -> bytes:
        threaded.append(len(bodies))
        return await to_thread(work, bodies)

    monkeypatch.setattr(extracts.asyncio, "to_thread", spy)
    short = [b'{"n":%d,"t":"\xc3\xa9"}' % n for n in range(20)]
    long = [b'{"n":%d,"t":"%s"}' % (n, b"x" * 3000) for n in range(5)]
    for bodies, writes_at_least, in_threads in ((short, 3, []), (long, 1, [5])):
        threaded.clear()
        python = extracts.SignedLines()
        expected = b"".join(python.item(body.decode()) or b"" for body in bodies)
        expected += python.flush() or b""
        lines = extracts.SignedLines()
        writes = [write async for write in extracts._chained(lines, bodies)]
        assert b"".join(writes) == expected
        assert (lines.chain, lines.count) == (python.chain, python.count)
        assert lines.count == len(bodies)
        assert lines.digest.hexdigest() == python.digest.hexdigest()
        assert len(writes) >= writes_at_least and threaded == in_threads
