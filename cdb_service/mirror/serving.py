"""The mirror's local, read-only resolve app (`--serve`): loopback, plain HTTP, no credentials.

It is the reference implementation's local fallback (the connector on the same
host keeps resolving while the central service is down), not a second service:
only `GET /api/v1/resolve` (and `/resolve/recipient/…`, `/resolve/national-member`)
plus `/health/live` and `/health/ready`. Nothing can be written, no entry, extract
or feed is served, and answers carry no named persons. The answers come from the
service's own lookup index and resolver, which the follower updates after each
applied page (rebuilds after an extract), so a request never sees half a revision.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response, Router, get
from litestar.datastructures import State

from cdb_service.db.documents import to_json_value
from cdb_service.lookup import deps as lookup_deps
from cdb_service.lookup.controller import ResolveController
from cdb_service.lookup.deps import lookup_of
from cdb_service.lookup.follower import IndexFollower
from cdb_service.mirror.follower import Status
from cdb_service.web.error_handlers import EXCEPTION_HANDLERS

SERVE_HOST = "127.0.0.1"


@get("/health/live", media_type="application/health+json")
async def live() -> dict[str, Any]:
    return {"status": "pass"}


@get("/health/ready", media_type="application/health+json")
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready once an index is loaded with the source's gazetteer; says which revision it
    serves, what the source had, and which gazetteer each holds.

    A mirror without the gazetteer, or with one the source has replaced, would resolve
    postal codes differently from the service: it is not ready.
    """
    index = lookup_of(request.scope).index
    status: Status = request.app.state["mirror_status"]
    held = index.gazetteer.identity if index is not None else None
    wanted = status.gazetteer_source
    why = (
        "no lookup index yet" if index is None
        else "no gazetteer" if held == "none" and wanted != "none"
        else f"gazetteer behind the source's ({wanted})" if wanted is not None and held != wanted
        else None
    )  # fmt: skip
    body = {
        "status": "fail" if why else "pass",
        "mirror": {
            "revision": index.revision if index is not None else None,
            "source": status.source_head,
            "last_contact": to_json_value(status.last_contact),
            "last_error": status.last_error,
            "extracts": status.extracts,
            "gazetteer": held,
            "source_gazetteer": wanted,
        },
    }
    if why:
        body["output"] = why
    return Response(body, status_code=503 if why else 200,
                    media_type="application/health+json")  # fmt: skip


def serving_app(follower: IndexFollower, status: Status) -> Litestar:
    """Read-only, credential-free resolve routes for loopback clients (see above)."""
    return Litestar(
        route_handlers=[Router(path="/api/v1", route_handlers=[ResolveController]), live, ready],
        # The resolve routes find the follower where the service's app keeps it.
        state=State({lookup_deps.STATE_KEY: follower, "mirror_status": status}),
        dependencies=lookup_deps.DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
        openapi_config=None,
        debug=False,
    )
