"""Liveness and readiness in `application/health+json` (draft-inadarei-api-health-check)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service import __version__, metrics
from cdb_service.db import migrate
from cdb_service.db.revisions import head_revision
from cdb_service.lookup.gazetteer import oldest_load
from cdb_service.lookup.index import IndexFollower
from cdb_service.settings import Settings

HEALTH_JSON = "application/health+json"
DB_TIMEOUT_S = 3.0
# The lookup index follows the registry several times a second; this much lag means trouble.
LOOKUP_STALE_S = 10.0


def _health(status: str, checks: dict[str, list[dict[str, Any]]] | None = None) -> Response[Any]:
    body: dict[str, Any] = {"status": status, "version": "1", "releaseId": __version__}
    if checks:
        body["checks"] = checks
    return Response(body, media_type=HEALTH_JSON, status_code=503 if status == "fail" else 200)


class HealthController(Controller):
    path = "/health"
    tags = ["health"]  # noqa: RUF012

    @get("/live", summary="The process is up", include_in_schema=True)
    async def live(self) -> Response[Any]:
        return _health("pass")

    @get("/ready", summary="Ready to serve: database, migrations, lookup data")
    async def ready(
        self,
        settings: NamedDependency[Settings],
        engine: NamedDependency[AsyncEngine],
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        lookup: NamedDependency[IndexFollower],
    ) -> Response[Any]:
        checks: dict[str, list[dict[str, Any]]] = {}
        try:
            async with asyncio.timeout(DB_TIMEOUT_S):
                await _check(settings, engine, sessions, lookup, checks)
        except Exception as error:
            checks["database:responseTime"] = [{"status": "fail", "output": type(error).__name__}]
            checks.setdefault("lookup:age", [_stale_index(lookup)])
        statuses = {c["status"] for items in checks.values() for c in items}
        overall = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
        metrics.READY.set(overall != "fail")
        return _health(overall, checks)


def _stale_index(lookup: IndexFollower) -> dict[str, Any]:
    """Without the database the index stops following it: /resolve still answers, from
    the revision named here, and readiness says how old that answer is."""
    age, index = lookup.age_seconds(), lookup.index
    return {
        "status": "warn" if age is not None and age < LOOKUP_STALE_S else "fail",
        "observedValue": None if age is None else round(age, 3), "observedUnit": "s",
        "output": "no index" if index is None else
        f"revision {index.revision}, not following the database",
    }  # fmt: skip


async def _check(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    lookup: IndexFollower,
    checks: dict[str, list[dict[str, Any]]],
) -> None:
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    async with sessions() as session:
        await session.execute(text("SELECT 1"))
    checks["database:responseTime"] = [{
        "status": "pass", "observedValue": round((time.perf_counter() - started) * 1000, 1),
        "observedUnit": "ms", "time": now.isoformat(),
    }]  # fmt: skip
    at_head = await migrate.at_head(engine)
    checks["database:migrations"] = [
        {"status": "pass" if at_head else "fail", "observedValue": "head" if at_head else "behind"}
    ]
    if not at_head:
        return
    async with sessions() as session:
        head = await head_revision(session)
        gazetteer_at = await oldest_load(session)
    checks["registry:revision"] = [{"status": "pass", "observedValue": head}]
    age = (now - gazetteer_at).total_seconds() if gazetteer_at else None
    stale_after = settings.gazetteer_max_age_days * 86400
    lookup_age = lookup.age_seconds()
    index = lookup.index
    checks["lookup:age"] = [{
        "status": "pass" if lookup_age is not None and lookup_age < LOOKUP_STALE_S else "fail",
        "observedValue": None if lookup_age is None else round(lookup_age, 3),
        "observedUnit": "s",
        "output": None if index is None else f"revision {index.revision}",
    }]  # fmt: skip
    checks["gazetteer:age"] = [{
        "status": "warn" if age is None or age > stale_after else "pass",
        "observedValue": None if age is None else round(age), "observedUnit": "s",
    }]  # fmt: skip
