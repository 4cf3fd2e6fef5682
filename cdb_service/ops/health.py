"""Liveness and readiness in `application/health+json` (draft-inadarei-api-health-check).

Readiness says whether this instance can serve what clients come for, and says it
within `ready_budget_s` whatever the database does: each database check runs as its
own task, and one that has not finished by the deadline fails as a timeout (it is
left to finish in the background rather than awaited; a stalled connection must not
stall the answer). The checks: the database answers, it takes a write (a full disk
lets reads through and refuses every write), migrations are at head, and the lookup
index is fresh — it has applied every revision it has seen within `lookup_max_lag_s`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service import __version__, metrics
from cdb_service.db import migrate
from cdb_service.db.faults import classify
from cdb_service.db.revisions import head_revision
from cdb_service.db.write_check import check_write
from cdb_service.logging import get_logger
from cdb_service.lookup import gazetteer
from cdb_service.lookup.follower import IndexFollower
from cdb_service.settings import Settings
from cdb_service.web.docs import problem_answers

HEALTH_JSON = "application/health+json"
Checks = dict[str, list[dict[str, Any]]]
log = get_logger("cdb.health")
# Checks abandoned at the deadline, kept referenced until they end (asyncio holds tasks weakly).
_abandoned: set[asyncio.Task[Any]] = set()


def _health(
    status: str, checks: Checks | None = None, retry_after: int | None = None
) -> Response[Any]:
    body: dict[str, Any] = {"status": status, "version": "1", "releaseId": __version__}
    if checks:
        body["checks"] = checks
    failed = status == "fail"
    headers = {"Retry-After": str(retry_after)} if failed and retry_after else {}
    return Response(body, media_type=HEALTH_JSON, status_code=503 if failed else 200,
                    headers=headers)  # fmt: skip


class Health(BaseModel):
    """draft-inadarei-api-health-check (`application/health+json`); 503 with `fail`."""

    status: Literal["pass", "warn", "fail"] = Field(description="the verdict (fail: 503)")
    version: str = Field(description="the health document's version")
    releaseId: str = Field(description="the service's release")
    checks: dict[str, list[dict[str, Any]]] | None = Field(
        default=None, description="each dependency checked, by name (database, index, ...)"
    )


HEALTH = {
    200: ResponseSpec(data_container=Health, description="pass or warn", media_type=HEALTH_JSON,
                      generate_examples=False),
    503: ResponseSpec(data_container=Health, description="fail", media_type=HEALTH_JSON,
                      generate_examples=False),
    **problem_answers(400, 414),  # the perimeter's, on every route
}  # fmt: skip


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012

    @get("/live", summary="The process is up", include_in_schema=True, responses=HEALTH)
    async def live(self) -> Response[Any]:
        return _health("pass")

    @get(
        "/ready",
        summary="Ready to serve: database reads and writes, migrations, lookup data",
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
        database_down = any(c["status"] == "fail" for name, items in checks.items()
                            if name.startswith("database") for c in items)  # fmt: skip
        if database_down and lookup.index is not None:
            # /resolve still answers from memory: say from which revision, and that the
            # index cannot follow a database it cannot reach.
            index_check["output"] = (
                f"revision {lookup.index.revision}, not following the database; "
                + index_check["output"]
            )
        checks["lookup:age"] = [index_check]
        statuses = {c["status"] for items in checks.values() for c in items}
        overall = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
        metrics.READY.set(overall != "fail")
        return _health(overall, checks, settings.retry_after_s)


async def _bounded(work: Callable[[], Awaitable[Any]], deadline: float) -> tuple[Any, str | None]:
    """(result, None), or (None, why it failed) — by the deadline at the latest."""
    started = time.perf_counter()
    task = asyncio.ensure_future(work())
    done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
    if not done:
        task.cancel()
        _abandoned.add(task)
        task.add_done_callback(_forget)
        return None, f"timeout after {time.perf_counter() - started:.1f} s"
    error = task.exception()
    if error is not None:
        fault = classify(error)
        return None, fault.kind.value if fault else type(error).__name__
    return task.result(), None


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned readiness check ended", error=repr(task.exception()))


async def _database_checks(settings: Settings, engine: AsyncEngine,
                           sessions: async_sessionmaker[AsyncSession], checks: Checks,
                           deadline: float, lookup: IndexFollower) -> None:  # fmt: skip
    now = dt.datetime.now(dt.UTC)

    async def select_one() -> float:
        started = time.perf_counter()
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
        return round((time.perf_counter() - started) * 1000, 1)

    elapsed, error = await _bounded(select_one, deadline)
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
    at_head, error = await _bounded(lambda: migrate.at_head(engine), deadline)
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
    _, error = await _bounded(lambda: check_write(sessions), deadline)
    checks["database:writable"] = [
        {"status": "fail", "output": error} if error else {"status": "pass"}
    ]

    async def registry() -> tuple[int, list[gazetteer.GazetteerLoad]]:
        async with sessions() as session:
            return await head_revision(session), await gazetteer.loads(session)

    found, error = await _bounded(registry, deadline)
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
    """Fresh: every revision the index has seen is applied, or has waited less than the limit."""
    fresh = lookup.freshness()
    index = lookup.index
    if fresh is None or index is None:
        return {"status": "fail", "observedValue": None, "observedUnit": "s",
                "output": "the lookup index is not built yet"}  # fmt: skip
    lag, since_look = fresh
    limit = settings.lookup_max_lag_s
    ok = lag < limit and since_look < limit
    output = f"revision {index.revision}; head last read {since_look:.1f} s ago"
    return {"status": "pass" if ok else "fail", "observedValue": round(lag, 3),
            "observedUnit": "s", "output": output}  # fmt: skip
