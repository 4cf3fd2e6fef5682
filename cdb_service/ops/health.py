"""Liveness and readiness in `application/health+json` (draft-inadarei-api-health-check).

Readiness is per traffic. Look-up readiness (`/health/ready`, what load balancers use
for look-ups) says whether this instance answers look-ups: its lookup index exists,
follows the database (no seen revision unapplied for `lookup_max_lag_s`) and last
synced with it at most `lookup_max_stale_s` ago. The database does not gate it: while
it does not answer, look-ups answer from memory and the document says so (`warn`,
`output`, the database's checks marked `warn`); only migrations found behind fail it.
Write readiness (`/health/ready/write`, `ops/write_ready.py`) says whether a write can
commit. Both answer within `ready_budget_s` whatever the database does.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service import metrics
from cdb_service.db import migrate
from cdb_service.db.revisions import head_revision
from cdb_service.lookup import gazetteer
from cdb_service.lookup.follower import IndexFollower
from cdb_service.ops.health_json import HEALTH, Checks, bounded, health, verdict
from cdb_service.ops.write_ready import WriteReadiness
from cdb_service.settings import Settings


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012

    @get("/live", summary="The process is up", include_in_schema=True, responses=HEALTH)
    async def live(self) -> Response[Any]:
        return health("pass")

    @get(
        "/ready",
        summary="Ready for look-ups: the lookup index, fresh enough (the database need not answer)",
        responses=HEALTH,
    )
    async def ready(
        self,
        settings: NamedDependency[Settings],
        engine: NamedDependency[AsyncEngine],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        lookup: NamedDependency[IndexFollower],
    ) -> Response[Any]:
        checks: Checks = {}
        deadline = time.monotonic() + settings.ready_budget_s
        await _database_checks(settings, engine, sessions, checks, deadline, lookup)
        index_check = _lookup_check(settings, lookup)
        # A check that could not ask the database (migrations found behind still fail).
        unreachable = [c for items in checks.values() for c in items
                       if c["status"] == "fail" and c.get("observedValue") != "behind"]  # fmt: skip
        for check in unreachable:  # degraded, not down: look-ups answer from memory
            check["status"] = "warn"
        if unreachable and index_check["status"] == "pass":
            index_check["status"] = "warn"
            index_check["output"] += ": not following the database"
        checks["lookup:age"] = [index_check]
        overall = verdict(checks)
        metrics.READY.set(overall != "fail")
        output = _degraded(lookup, index_check, bool(unreachable))
        return health(overall, checks, settings.retry_after_s, output)

    @get(
        "/ready/write",
        summary="Ready for writes: a registry write can commit now (head lock, pool, disk)",
        responses=HEALTH,
    )
    async def ready_write(
        self, settings: NamedDependency[Settings],
        write_readiness: NamedDependency[WriteReadiness],
    ) -> Response[Any]:  # fmt: skip
        status, checks = await write_readiness.check()
        return health(status, checks, settings.retry_after_s)


def _degraded(lookup: IndexFollower, index_check: dict[str, Any], unreachable: bool) -> str | None:
    """What is degraded, in words: the part that does not work, the part that still does."""
    index = lookup.index
    if index is None:
        return "look-ups wait for the lookup index: it is not built yet"
    if lookup.saved_from is not None:
        return (f"look-ups answer from the saved lookup index (revision {index.revision}, "
                f"synced {lookup.saved_from.isoformat()}); the database has not answered "
                "since the start, so writes fail (see /health/ready/write)")  # fmt: skip
    if unreachable:
        return (f"the database does not answer: look-ups answer from memory at revision "
                f"{index.revision} ({index_check['output']}); writes fail "
                "(see /health/ready/write)")  # fmt: skip
    return None


async def _database_checks(settings: Settings, engine: AsyncEngine,
                           sessions: async_sessionmaker[AsyncSession], checks: Checks,
                           deadline: float, lookup: IndexFollower) -> None:  # fmt: skip
    now = dt.datetime.now(dt.UTC)

    async def select_one() -> float:
        started = time.perf_counter()
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
        return round((time.perf_counter() - started) * 1000, 1)

    elapsed, error = await bounded(select_one, deadline)
    checks["database:responseTime"] = [
        {"status": "fail", "output": error}
        if error
        else {
            "status": "pass",
            "observedValue": elapsed,
            "observedUnit": "ms",
            "time": now.isoformat(),
        }
    ]
    if error:
        return
    at_head, error = await bounded(lambda: migrate.at_head(engine), deadline)
    checks["database:migrations"] = [
        {"status": "fail", "output": error}
        if error
        else {
            "status": "pass" if at_head else "fail",
            "observedValue": "head" if at_head else "behind",
        }
    ]
    if error or not at_head:
        return

    async def registry() -> tuple[int, list[gazetteer.GazetteerLoad]]:
        async with sessions() as session:
            return await head_revision(session), await gazetteer.loads(session)

    found, error = await bounded(registry, deadline)
    if error:
        checks["registry:revision"] = [{"status": "fail", "output": error}]
        return
    head, loads = found
    checks["registry:revision"] = [{"status": "pass", "observedValue": head}]
    checks["gazetteer:age"] = gazetteer_ages(loads, now, settings.gazetteer_max_age_days)
    if lookup.index is not None:
        checks["gazetteer:index"] = [_gazetteer_followed(lookup, loads)]


def gazetteer_ages(loads: list[gazetteer.GazetteerLoad], now: dt.datetime,
                   max_age_days: int) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per country: when its gazetteer was loaded, how long ago, how many places."""
    if not loads:
        why = "no gazetteer: postal codes reach only postal-code criteria"
        return [{"status": "warn", "observedValue": None, "observedUnit": "s", "output": why}]
    stale_after = max_age_days * 86400
    out = []
    for load in loads:
        age = (now - load.loaded_at).total_seconds()
        out.append({
            "componentId": load.country, "status": "warn" if age > stale_after else "pass",
            "observedValue": round(age), "observedUnit": "s", "time": load.loaded_at.isoformat(),
            "output": f"{load.place_count} places from {load.source}",
        })  # fmt: skip
    return out


def _gazetteer_followed(
    lookup: IndexFollower, loads: list[gazetteer.GazetteerLoad]
) -> dict[str, Any]:
    """Whether this worker's index answers from the gazetteer the database holds now."""
    assert lookup.index is not None
    held = lookup.index.gazetteer.identity
    wanted = gazetteer.identity({load.country: gazetteer.stamp_of(load) for load in loads})
    current = held == wanted
    output = "current" if current else f"following (the database has {wanted})"
    return {"status": "pass" if current else "warn", "observedValue": held, "output": output}


def _lookup_check(settings: Settings, lookup: IndexFollower) -> dict[str, Any]:
    """pass: following the database. warn: not following it (it does not answer), last
    synced less than `lookup_max_stale_s` ago. fail: no index, an index that does not
    follow a database that answers, or one synced too long ago."""
    fresh = lookup.freshness()
    index = lookup.index
    if fresh is None or index is None:
        return {"status": "fail", "observedValue": None, "observedUnit": "s",
                "output": "the lookup index is not built yet"}  # fmt: skip
    lag, since_sync = fresh
    output = f"revision {index.revision}; last synced with the database {since_sync:.1f} s ago"
    if lag >= settings.lookup_max_lag_s:
        status = "fail"
        output += f"; a seen revision has waited {lag:.1f} s (CDB_LOOKUP_MAX_LAG_S)"
    elif since_sync >= settings.lookup_max_stale_s:
        status = "fail"
        output += " (older than CDB_LOOKUP_MAX_STALE_S)"
    elif lookup.saved_from is not None or since_sync >= settings.lookup_max_lag_s:
        status = "warn"
        output += ": not following the database"
    else:
        status = "pass"
    return {"status": status, "observedValue": round(max(lag, since_sync), 3),
            "observedUnit": "s", "output": output}  # fmt: skip
