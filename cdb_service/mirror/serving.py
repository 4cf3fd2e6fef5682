"""The mirror's local, read-only resolve app (`--serve`): loopback, plain HTTP, no credentials.

It is the reference implementation's local fallback (the connector on the same
host keeps resolving while the central service is down), not a second service:
only `GET /api/v1/resolve` (and `/resolve/recipient/…`, `/resolve/national-member`)
plus `/health/live` and `/health/ready`; each look-up answers 503 with Retry-After
until the mirror is ready (`mirror/readiness.py`). Nothing can be written, no entry, extract
or feed is served, and answers carry no named persons. The answers come from the
service's own lookup index and resolver, which the follower updates after each
applied page (rebuilds after an extract), so a request never sees half a revision.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Response, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from cdb_service.db.documents import to_json_value
from cdb_service.db.revisions import MAX_REVISION
from cdb_service.lookup import deps as lookup_deps
from cdb_service.lookup.controller import ResolveController
from cdb_service.lookup.follower import IndexFollower
from cdb_service.mirror import deps as mirror_deps
from cdb_service.mirror.follower import Status
from cdb_service.mirror.readiness import require_ready, why_not_ready
from cdb_service.settings import Settings
from cdb_service.web.consistency import ReadYourWrites
from cdb_service.web.error_handlers import EXCEPTION_HANDLERS

SERVE_HOST = "127.0.0.1"


@get("/health/live", media_type="application/health+json")
async def live() -> dict[str, Any]:
    return {"status": "pass"}


@get("/health/ready", media_type="application/health+json")
async def ready(
    lookup: NamedDependency[IndexFollower], mirror_status: NamedDependency[Status]
) -> Response[Any]:
    """Ready once the mirror knows its copy is the source's (`mirror/readiness.py`, the
    same condition that gates every look-up route); says which revision it serves, what
    the source had, and which gazetteer each holds.
    """
    index, status = lookup.index, mirror_status
    why = why_not_ready(index, status)
    body = {
        "status": "fail" if why else "pass",
        "mirror": {
            "revision": index.revision if index is not None else None,
            "source": status.source_head,
            "last_contact": to_json_value(status.last_contact),
            "last_error": status.last_error,
            "extracts": status.extracts,
            "gazetteer": index.gazetteer.identity if index is not None else None,
            "source_gazetteer": status.gazetteer_source,
            "settled": status.settled,
        },
    }
    if why:
        body["output"] = why
    return Response(body, status_code=503 if why else 200,
                    media_type="application/health+json")  # fmt: skip


async def any_revision() -> int:
    """The head a mirror checks `min_revision` against: it cannot tell a revision its
    source never wrote from one it has not received yet, so every revision may still
    come; one it lacks is waited for (bounded) and answered 503 with Retry-After."""
    return MAX_REVISION


_DEFAULTS = Settings.model_fields


def serving_app(
    follower: IndexFollower,
    status: Status,
    wait_s: float = _DEFAULTS["min_revision_wait_s"].default,
    retry_after_s: int = _DEFAULTS["retry_after_s"].default,
) -> Litestar:
    """Read-only, credential-free resolve routes for loopback clients (see above).

    Every part the routes ask for is built here, as the service's composition root
    builds its own: the index, its readiness, and how `min_revision` waits (`wait_s`).
    Every look-up route sits behind one guard: 503 with Retry-After until ready. (The
    service's fast path is not mounted here: every request reaches the router.)
    """
    api = Router(path="/api/v1", route_handlers=[ResolveController],
                 guards=[require_ready(follower, status, retry_after_s)])  # fmt: skip
    parts = {
        lookup_deps.STATE_KEY: follower,
        "mirror_status": status,
        "read_your_writes": ReadYourWrites(any_revision, wait_s, retry_after_s),
    }
    return Litestar(
        route_handlers=[api, live, ready],
        state=State(parts),
        dependencies=mirror_deps.DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        openapi_config=None,
        debug=False,
    )
