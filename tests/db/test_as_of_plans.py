"""Reads of the past cost what they answer, not what the registry holds, under the plans
PostgreSQL picks for prepared statements.

asyncpg prepares every statement; after five executions PostgreSQL may switch to a
generic plan that knows no parameter values. With the old shape of the as-of page
query, that plan read every version of the kind for each page and the statement
timeout cut an `extract?revision=R` after 345 KB. Here the page query's plan is read
with `EXPLAIN ANALYZE` under both plan cache modes, on a registry of 30,000 entries
with three versions each (90,000 rows) spread over 30,000 revisions: the rows each
plan touches must stay within a small multiple of the page, wherever the page starts.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from cdb_service.db.revisions.queries import collection_as_of, collection_as_of_query
from cdb_service.distribution.extract_sql import as_of_line_sql
from cdb_service.registry.kinds import KINDS
from cdb_service.services import Services

pytestmark = pytest.mark.postgres_only

ENTRIES, VERSIONS, PAGE = 30_000, 3, 500
# A page's entries with their few versions, on both sides of the anti join, which
# compares an entry's versions pairwise: about 20 rows per entry at three versions. The
# registry holds 90,000 rows; the old shape touched 49,502 for one page in the middle.
TOUCHED_BOUND = 8 * VERSIONS * PAGE


async def _fill(services: Services) -> None:
    """Entry e's version v is written at revision (v - 1) * ENTRIES / 3 + e // 3 + 1."""
    per = ENTRIES // 3
    async with services.engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO revisions (revision, committed_at, actor, change_count) "
            f"SELECT g, now(), 'test', 3 FROM generate_series(1, {VERSIONS * per}) g"))  # fmt: skip
        await connection.execute(text(
            "INSERT INTO entry_versions (revision, kind, entry_id, version, operation, owner, "
            "recorded_at, actor, document) "
            f"SELECT (v - 1) * {per} + e / 3 + 1, 'authorities', "
            "  ('00000000-0000-4000-8000-' || lpad(to_hex(e), 12, '0'))::uuid, v, "
            "  CASE WHEN v = 1 THEN 'create' ELSE 'update' END, 'DE', now(), 'test', "
            "  jsonb_build_object('code', 'DE:' || e, 'version', v) "
            f"FROM generate_series(0, {ENTRIES - 1}) e, "
            f"generate_series(1, {VERSIONS}) v"))  # fmt: skip
        await connection.execute(text("ANALYZE entry_versions"))


def _touched(plan: dict[str, Any]) -> int:
    """Rows a plan node and its children produced or threw away, over all their loops."""
    loops = plan.get("Actual Loops", 1)
    own = plan.get("Actual Rows", 0) + sum(
        plan.get(removed, 0)
        for removed in (
            "Rows Removed by Filter",
            "Rows Removed by Join Filter",
            "Rows Removed by Index Recheck",
        )
    )
    return int(own * loops) + sum(_touched(child) for child in plan.get("Plans", ()))


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def _rows_touched(services: Services, mode: str, revision: int, after: uuid.UUID) -> int:
    statement = collection_as_of_query("authorities", revision, after=after, limit=PAGE)
    compiled = statement.compile(dialect=PGDialect_asyncpg())  # type: ignore[no-untyped-call]
    values = compiled.construct_params()
    arguments = ", ".join(_literal(values[name]) for name in compiled.positiontup or ())
    async with services.engine.connect() as connection:
        await connection.execute(text(f"SET plan_cache_mode = {mode}"))
        await connection.exec_driver_sql(f"PREPARE as_of_page AS {compiled.string}")
        explained = await connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE as_of_page({arguments})"
        )
        document = explained.scalar_one()
        await connection.exec_driver_sql("DEALLOCATE as_of_page")
        await connection.rollback()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return _touched(plan)


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
async def test_a_page_of_the_past_touches_about_a_page_of_rows(
    services: Services, mode: str
) -> None:
    await _fill(services)
    middle = uuid.UUID(f"00000000-0000-4000-8000-{ENTRIES // 2:012x}")
    for revision in (ENTRIES // 3, 2 * ENTRIES // 3 + 1, ENTRIES):
        touched = await _rows_touched(services, mode, revision, middle)
        assert touched <= TOUCHED_BOUND, (mode, revision, touched)


async def test_the_page_is_the_entries_as_they_stood(services: Services) -> None:
    """The same query, executed: at R, each entry at its last version at or before R."""
    await _fill(services)
    per = ENTRIES // 3
    revision = per + 10  # version 2 of entries 0..29 is written by then, not of entry 30
    async with services.sessions() as session:
        page = await collection_as_of(session, "authorities", revision, limit=40)
    assert [v.document["code"] for v in page] == [f"DE:{e}" for e in range(40)]
    assert [v.version for v in page] == [2] * 30 + [1] * 10


async def _others(services: Services) -> None:
    """Versions of another kind, OTHERS per entry of the first, up to every revision."""
    async with services.engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO entry_versions (revision, kind, entry_id, version, operation, owner, "
            "recorded_at, actor, document) "
            f"SELECT e % {ENTRIES} + 1, 'owners', gen_random_uuid(), 1, 'create', 'DE', now(), "
            "  'test', '{}'::jsonb "
            f"FROM generate_series(0, {OTHERS * ENTRIES - 1}) e"))  # fmt: skip
        # And one authority edited HOT times: a join of versions with later versions
        # would compare its versions pairwise (over a million rows).
        await connection.execute(text(
            "INSERT INTO entry_versions (revision, kind, entry_id, version, operation, owner, "
            "recorded_at, actor, document) "
            "SELECT v, 'authorities', 'ffffffff-0000-4000-8000-000000000000', v, "
            "  CASE WHEN v = 1 THEN 'create' ELSE 'update' END, 'DE', now(), 'test', "
            "  jsonb_build_object('code', 'DE:HOT', 'version', v) "
            f"FROM generate_series(1, {HOT}) v"))  # fmt: skip
        await connection.execute(text("ANALYZE entry_versions"))


OTHERS, HOT = 4, 1500


@pytest.mark.parametrize("mode", ["force_generic_plan", "force_custom_plan"])
async def test_an_extract_of_the_past_touches_its_kind_not_the_registry(
    services: Services, mode: str
) -> None:
    """The statement that writes an extract's lines at R (`as_of_line_sql`) is one pass:
    over the kind's versions (by its index), or over the table when the kind is most of
    it, and through a window, never a join. A join of versions with later versions
    grows with the square of an entry's history (the old page query's generic plan
    removed 237,576,482 rows by join filter); here each version costs a few rows."""
    await _fill(services)
    await _others(services)
    sql = as_of_line_sql(KINDS["authorities"], by_owner=False)
    async with services.engine.connect() as connection:
        await connection.execute(text(f"SET plan_cache_mode = {mode}"))
        await connection.exec_driver_sql(f"PREPARE as_of_extract(integer) AS {sql}")
        for revision in (ENTRIES // 3, ENTRIES):
            explained = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE as_of_extract({revision})"
            )
            document = explained.scalar_one()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            # Read once (at most the whole table), then each of the kind's versions up to R
            # through the sort, the window and the filter.
            kind = VERSIONS * ENTRIES + HOT
            assert _touched(plan) <= OTHERS * ENTRIES + 5 * kind, (mode, revision)
        await connection.rollback()
