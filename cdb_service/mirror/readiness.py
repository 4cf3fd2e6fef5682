"""When the mirror may answer a look-up: one condition for `/health/ready` and every route.

A mirror that answers before it knows gives a client that does not look at readiness a
wrong answer: after its first extract it once answered `/resolve` 200 with no match
(its gazetteer not yet copied) for about 11 s while its readiness said 503, and a
restarted mirror answered from the copy it held while the source had moved on. So the
condition its `/health/ready` reports also gates every look-up route (`require_ready`,
the guard of the mirror's `/api/v1` router): until it holds, each answers the catalogue's
503 `not-ready` with `Retry-After`, in JSON or XML as negotiated.

The condition: an index is loaded; its gazetteer is the source's as last announced; and
since it started the mirror has caught up with the source once (registry and gazetteer
copied and verified), or could not reach it and holds a whole copy of its own, which it
serves (the local fallback while the central service is down).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from cdb_service.kernel.problems import NOT_READY
from cdb_service.lookup.follower import IndexFollower
from cdb_service.lookup.index import LookupIndex
from cdb_service.mirror.follower import Status


def why_not_ready(index: LookupIndex | None, status: Status) -> str | None:
    """Why the mirror must not answer yet, or None when it may."""
    if index is None:
        return "no lookup index yet"
    held, wanted = index.gazetteer.identity, status.gazetteer_source
    if held == "none" and wanted != "none":
        return "no gazetteer"
    if wanted is not None and held != wanted:
        return f"gazetteer behind the source's ({wanted})"
    if status.settled is None:
        return "not yet caught up with the source since it started"
    return None


def require_ready(lookup: IndexFollower, status: Status, retry_after_s: int) -> Guard:
    """The guard that answers 503 for every look-up while `why_not_ready` says why."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any],
              handler: BaseRouteHandler) -> None:  # fmt: skip
        why = why_not_ready(lookup.index, status)
        if why is not None:
            raise NOT_READY(
                f"the mirror is not ready: {why}; try again in {retry_after_s} s",
                extra={"retry_after_s": retry_after_s},
                headers={"Retry-After": str(retry_after_s)},
            )

    return guard
