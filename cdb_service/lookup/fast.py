"""`GET /api/v1/resolve` in its plain case, past the framework (see `web.fast_path`).

The same answer as `ResolveController.resolve` for a request without `min_revision`:
the same parameters read by `lookup.query`, the same cached body, the same ETag and
headers. Anything else (a parameter to validate, an index still loading) is declined
and the handler answers.

A RIS asks the same questions all day, so the whole answer (ETag and body) is kept by
the request's query string and the day (`IndexFollower.prepared`): a question asked
again at the same revision is neither parsed nor looked up again.
"""

from __future__ import annotations

from litestar.serialization import encode_json
from litestar.types import Scope

from cdb_service.kernel.calendar import today
from cdb_service.lookup import query, resolver
from cdb_service.lookup.deps import lookup_of
from cdb_service.security.policy import require_read
from cdb_service.web.conditional import none_match
from cdb_service.web.fast_path import REMEMBERED_QUERY_BYTES, FastAnswer, Route


def resolve(scope: Scope, params: dict[str, str]) -> FastAnswer | None:
    require_read(scope["user"])  # the role guard's check, as for every API route
    lookup = lookup_of(scope)
    index = lookup.index
    if index is None:
        return None

    def answered() -> tuple[str, bytes]:
        # A mistake raises: declined, the route says why (and nothing is remembered).
        asked = query.resolve_query(params, index.owners)
        body = lookup.answer(
            index, ("resolve", asked), lambda: encode_json(resolver.resolve(index, asked))
        )
        return query.etag(index, asked.date), body

    raw: bytes = scope.get("query_string", b"")
    # (As many kept as the answer cache holds, `follower.ANSWER_CACHE_SIZE`.)
    if len(raw) > REMEMBERED_QUERY_BYTES:  # not kept: answered as before
        tag, body = answered()
    else:  # the same query string on the same day asks the same question of this revision
        tag, body = lookup.prepared(index, (raw, today()), answered)
    # The route offers XML too (web.negotiation): caches must keep the forms apart.
    if none_match(scope, tag):
        return FastAnswer(304, [(b"etag", tag.encode()), (b"vary", b"Accept")])
    headers = [(b"content-type", b"application/json"), (b"etag", tag.encode()),
               (b"cache-control", b"no-cache"), (b"vary", b"Accept")]  # fmt: skip
    return FastAnswer(200, headers, body)


ROUTE = Route(resolve, query.NAMES)
