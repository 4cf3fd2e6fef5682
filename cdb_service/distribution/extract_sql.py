"""PostgreSQL writes the extract's entry lines itself: the SQL that gives, byte for byte,
the JSON text `extracts._lines_now` builds in Python, and the cursor that fetches them in
chunks sized by their bytes (tests/distribution/test_extract_lines.py compares both).

An extract of the past (`revision=R`) is written there too (`as_of_line_sql`): each
entry's version at R, its document as the database holds it, in one statement whose
cost is one pass over the kind's versions, under any plan (tests/db/test_as_of_plans.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Integer, String, Uuid, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from cdb_service.db.base import COMMON_FIELDS, DateTimeUTC
from cdb_service.registry.kinds.spec import KindSpec

# PostgreSQL's lines: rows per cursor fetch, first and at most; between, as many as
# FETCH_BYTES holds at the largest line of the kind seen so far, one at least. An entry
# is at most 2 MiB: a fetch of small lines never waits behind a few huge ones, and the
# first fetch of huge ones is 32 MiB, the next ones 4 MiB (before, at least 64 rows:
# 128 MiB). An extract holds about three fetches' worth: the one being chained, its
# chained copy, and the next one arriving.
FIRST_FETCH = 16
MAX_FETCH = 2000
FETCH_BYTES = 4 * 1024 * 1024


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_value(column: Any) -> str | None:
    """The SQL that writes a column's value as `to_json_value` and `_dumps` do, with
    `null` for NULL; None for a column type it does not know (then Python writes it)."""
    name, kind = f'"{column.name}"', column.type
    if isinstance(kind, JSON):  # as the database holds it: what `_lines_now` takes as is
        text = f"{name}::text"
    elif isinstance(kind, DateTimeUTC):
        # isoformat(): microseconds only when there are some. One to_char and a replace
        # cost a third of what two to_char, a date_trunc and a comparison did.
        text = (f"""replace(to_char(({name} AT TIME ZONE 'UTC'), """
                """'\\"YYYY-MM-DD"T"HH24:MI:SS.US"Z"\\"'), '.000000Z', 'Z')""")  # fmt: skip
    elif isinstance(kind, Date):
        text = f"""'"' || to_char({name}, 'YYYY-MM-DD') || '"'"""
    elif isinstance(kind, Uuid):
        text = f"""'"' || {name}::text || '"'"""
    elif isinstance(kind, Boolean | String):  # to_json escapes as json.dumps does
        text = f"to_json({name})::text"
    elif isinstance(kind, Integer):
        text = f"{name}::text"
    else:
        return None
    return f"COALESCE({text}, 'null')"


def line_sql(kind: KindSpec, by_owner: bool) -> str | None:
    """PostgreSQL's query for the entry lines of a kind's current rows, each the UTF-8
    text of the JSON object `_lines_now` builds (byte for byte); None when a column's
    type has no SQL encoding here."""
    table: Any = kind.model.__table__
    parts = [_sql_text(f'{{"type":"entry","kind":{_dumps(kind.name)},"id":"'), '"id"::text',
             _sql_text('","version":'), '"version"::text', _sql_text(',"revision":'),
             '"revision"::text', _sql_text(',"document":{')]  # fmt: skip
    for n, name in enumerate((*COMMON_FIELDS, *kind.fields)):
        value = _sql_value(table.c[name])
        if value is None:
            return None
        parts += [_sql_text(("," if n else "") + f'"{name}":'), value]
    parts.append(_sql_text("}}"))
    where = " WHERE owner = $1" if by_owner else ""
    line = " || ".join(parts)
    # The rows are put in order first (OFFSET 0 keeps the subquery apart), and each line
    # is written as its row comes out: sorting the lines themselves had the database
    # write the whole kind's text (tens of MB, to disk past work_mem) before the first
    # row, while the service waited, and then wait while the service chained them.
    return (
        f"SELECT convert_to({line}, 'UTF8') FROM (SELECT * FROM \"{table.name}\"{where} "
        f'ORDER BY id OFFSET 0) AS "{table.name}" ORDER BY id'
    )


def as_of_line_sql(kind: KindSpec, by_owner: bool) -> str:
    """PostgreSQL's query for the entry lines of a kind as it stood at revision $1 (of
    owner $2 with `by_owner`): each entry's last version at or before $1, unless that one
    deleted it, in id order, as `extracts._entries_then` gives them (the document as the
    database holds it: what `line_sql` puts in a line for a JSON column).

    One pass over the kind's versions in (entry_id, version) order (its index, or the
    table when the kind is most of it), no join: a version is the entry's at $1 when the
    next one at or before $1 is another entry's (`lead`). An entry edited thousands of
    times costs its versions, not their square as a join with later versions did.
    `revision + 0` keeps the revision index out of the plans, a generic one's too: through
    it, every kind's versions up to $1 were read to keep one kind's."""
    head = _sql_text(f'{{"type":"entry","kind":{_dumps(kind.name)},"id":"')
    line = (f"""{head} || entry_id::text || '","version":' || version::text || """
            """',"revision":' || revision::text || ',"document":' || document::text """
            """|| '}'""")  # fmt: skip
    owner = " AND owner = $2" if by_owner else ""
    return (f"SELECT convert_to({line}, 'UTF8') FROM (SELECT entry_id, version, revision, "
            "operation, owner, document, lead(entry_id) OVER (ORDER BY entry_id, version) "
            f"AS following FROM entry_versions WHERE kind = {_sql_text(kind.name)} "
            "AND revision + 0 <= $1) AS upto WHERE following IS DISTINCT FROM entry_id "
            f"AND operation <> 'delete'{owner} ORDER BY entry_id")  # fmt: skip


async def batches_from_database(session: AsyncSession, sql: str, arguments: Sequence[Any] = ()
                                ) -> AsyncGenerator[list[bytes], None]:  # fmt: skip
    """The lines `line_sql` (or `as_of_line_sql`) writes, given its `arguments` ($1, $2),
    through a cursor of the snapshot's transaction (the driver's own: no per-row work on
    the way), a fetch of about FETCH_BYTES at a time. The next fetch is sent before the
    lines of this one are handed on, so the database writes it while they are chained,
    deflated and sent. Close it (`contextlib.aclosing`) when leaving early: the fetch
    under way is waited for, and the connection is free for the snapshot's rollback."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():  # SQLAlchemy's BEGIN waits for its first statement
        await session.execute(select(literal(1)))
    cursor = await driver.cursor(sql, *arguments)
    rows, largest = FIRST_FETCH, 1
    pending: asyncio.Future[list[Any]] | None = asyncio.ensure_future(cursor.fetch(rows))
    try:
        while pending is not None:
            records, asked = await pending, rows
            pending = None
            if len(records) == asked:
                largest = max(largest, *(len(line) for (line,) in records))
                rows = max(1, min(MAX_FETCH, FETCH_BYTES // largest))
                pending = asyncio.ensure_future(cursor.fetch(rows))
                await asyncio.sleep(0)  # the fetch goes out now, not when awaited
            if records:
                yield [line for (line,) in records]
    finally:
        if pending is not None:  # the reader left early: the connection is free again after
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: a failure here is the leaving reader's
