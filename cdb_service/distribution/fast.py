"""The routing table's 304 in its plain case, past the framework (see `web.fast_path`).

A connector polls `GET /api/v1/routing-table` with `If-None-Match` every few minutes;
nearly every answer is 304, decided from the digest this worker computed at the
lookup index's revision (`RoutingTableController.routing_table`). Only that answer is
given here, for the JSON form without a party; anything else is declined and the
handler answers (a 200, a PMode, a revision not seen yet).
"""

from __future__ import annotations

from litestar.types import Scope

from cdb_service.distribution.deps import routing_digests_of
from cdb_service.distribution.routing_table import etag
from cdb_service.kernel.calendar import today
from cdb_service.lookup.deps import lookup_of
from cdb_service.security.policy import require_read
from cdb_service.web.conditional import none_match
from cdb_service.web.fast_path import FastAnswer, Route


def not_modified(scope: Scope, params: dict[str, str]) -> FastAnswer | None:
    require_read(scope["user"])
    if params.get("format", "json") != "json":
        return None
    index = lookup_of(scope).index
    if index is None:
        return None
    known = routing_digests_of(scope).get(index.revision, today())
    if known is None:
        return None
    tag = etag(known, "json", None)
    return FastAnswer(304, [(b"etag", tag.encode())]) if none_match(scope, tag) else None


ROUTE = Route(not_modified, frozenset({"format"}))
