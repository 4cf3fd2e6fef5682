"""The health document (`application/health+json`, draft-inadarei-api-health-check) and
the bounded run of one check, shared by look-up and write readiness.

A check runs as its own task; one that has not finished by the deadline fails as a
timeout and is left to finish in the background rather than awaited (a stalled
connection must not stall the answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from litestar import Response
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel, Field

from cdb_service import __version__
from cdb_service.db.faults import classify
from cdb_service.db.write_check import NotWritable
from cdb_service.logging import get_logger
from cdb_service.web.docs import problem_answers

HEALTH_JSON = "application/health+json"
Checks = dict[str, list[dict[str, Any]]]
log = get_logger("cdb.health")
# Checks abandoned at the deadline, kept referenced until they end (asyncio holds tasks weakly).
_abandoned: set[asyncio.Task[Any]] = set()


def health(status: str, checks: Checks | None = None, retry_after: int | None = None,
           output: str | None = None) -> Response[Any]:  # fmt: skip
    body: dict[str, Any] = {"status": status, "version": "1", "releaseId": __version__}
    if output:
        body["output"] = output
    if checks:
        body["checks"] = checks
    failed = status == "fail"
    headers = {"Retry-After": str(retry_after)} if failed and retry_after else {}
    return Response(body, media_type=HEALTH_JSON, status_code=503 if failed else 200,
                    headers=headers)  # fmt: skip


def verdict(checks: Checks) -> str:
    statuses = {c["status"] for items in checks.values() for c in items}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


class Health(BaseModel):
    """draft-inadarei-api-health-check (`application/health+json`); 503 with `fail`."""

    status: Literal["pass", "warn", "fail"] = Field(description="the verdict (fail: 503)")
    version: str = Field(description="the health document's version")
    releaseId: str = Field(description="the service's release")
    output: str | None = Field(default=None, description="what is degraded, in words")
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


async def bounded(work: Callable[[], Awaitable[Any]], deadline: float) -> tuple[Any, str | None]:
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
        if isinstance(error, NotWritable):
            return None, str(error)
        fault = classify(error)
        return None, fault.kind.value if fault else type(error).__name__
    return task.result(), None


def _forget(task: asyncio.Task[Any]) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned readiness check ended", error=repr(task.exception()))
