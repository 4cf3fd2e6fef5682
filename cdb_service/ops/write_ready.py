"""Write readiness (`/health/ready/write`): can a registry write commit here, now?

What gates write traffic (nginx's write location, the Kubernetes write Service), apart
from look-up readiness, which gates look-ups and stays 200 while the database is away.
It fails, with `Retry-After`, when the database does not answer, migrations are not at
head, the registry's head lock is held longer than `ready_lock_wait_s` (a stuck
writer), the pool has no free connection, or the database refuses a committed write
(a full disk) — all within `ready_budget_s`. One answer is shared for `SHARED_S`
across the requests of one worker: readiness needs no credentials, and polls must not
queue on the head lock.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from cdb_service.db import migrate
from cdb_service.db.write_check import check_write
from cdb_service.ops.health_json import Checks, bounded, verdict
from cdb_service.settings import Settings

SHARED_S = 1.0


@dataclass
class WriteReadiness:
    settings: Settings
    engine: AsyncEngine
    _last: tuple[float, str, Checks] = (-float("inf"), "fail", {})
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def check(self) -> tuple[str, Checks]:
        """(verdict, checks), at most `SHARED_S` old."""
        async with self._one_at_a_time:
            at, status, checks = self._last
            if time.monotonic() - at < SHARED_S:
                return status, checks
            checks = await self._checks()
            status = verdict(checks)
            self._last = (time.monotonic(), status, checks)
            return status, checks

    async def _checks(self) -> Checks:
        settings, engine = self.settings, self.engine
        deadline = time.monotonic() + settings.ready_budget_s

        checks: Checks = {}
        started = time.perf_counter()
        _, error = await bounded(
            lambda: check_write(engine, settings.ready_lock_wait_s, settings.db_lock_timeout_s),
            deadline,
        )
        took = round((time.perf_counter() - started) * 1000, 1)
        checks["database:writable"] = [_entry(error, took)]
        if error is not None:
            return checks
        at_head, error = await bounded(lambda: migrate.at_head(engine), deadline)
        checks["database:migrations"] = [
            {"status": "fail", "output": error} if error else
            {"status": "pass" if at_head else "fail", "observedValue": "head" if at_head
             else "behind"}
        ]  # fmt: skip
        return checks


def _entry(error: str | None, took_ms: float | None) -> dict[str, Any]:
    if error is not None:
        return {"status": "fail", "output": error}
    found: dict[str, Any] = {"status": "pass"}
    if took_ms is not None:
        found |= {"observedValue": took_ms, "observedUnit": "ms"}
    return found
