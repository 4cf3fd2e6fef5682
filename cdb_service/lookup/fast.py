"""`GET /api/v1/resolve` in its plain case, past the framework (see `web.fast_path`).

The same answer as `ResolveController.resolve` for a request without `min_revision`:
the same parameters through `build_query`, the same cached body, the same ETag and
headers. Anything else (a parameter to validate, an index still loading) is declined
and the handler answers.
"""

from __future__ import annotations

import datetime as dt
import re

from litestar.serialization import encode_json
from litestar.types import Scope

from cdb_service.lookup import resolver
from cdb_service.lookup.controller import _etag, build_query
from cdb_service.lookup.deps import lookup_of
from cdb_service.security.policy import require_read
from cdb_service.web.conditional import none_match
from cdb_service.web.fast_path import FastAnswer, Route

PARAMETERS = frozenset(
    ("country", "instrument", "competence", "postal_code", "lau", "nuts", "subject_matter",
     "stage", "date")
)  # fmt: skip
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(text: str | None) -> dt.date | None:
    """An ISO date as the framework reads one; anything else raises (the handler says why)."""
    if text is None:
        return None
    if not _DATE.fullmatch(text):
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def resolve(scope: Scope, params: dict[str, str]) -> FastAnswer | None:
    require_read(scope["user"])  # the role guard's check, as for every API route
    try:
        day = _date(params.get("date"))
    except ValueError:
        return None
    g = params.get
    query = build_query(g("country"), g("instrument"), g("competence"), g("postal_code"),
                        g("lau"), g("nuts"), g("subject_matter"), g("stage"), day)  # fmt: skip
    lookup = lookup_of(scope)
    index = lookup.index
    if index is None:
        return None
    body = lookup.answer(
        index, ("resolve", query), lambda: encode_json(resolver.resolve(index, query))
    )
    tag = _etag(index, query.date)
    # The route offers XML too (web.negotiation): caches must keep the forms apart.
    if none_match(scope, tag):
        return FastAnswer(304, [(b"etag", tag.encode()), (b"vary", b"Accept")])
    headers = [(b"content-type", b"application/json"), (b"etag", tag.encode()),
               (b"cache-control", b"no-cache"), (b"vary", b"Accept")]  # fmt: skip
    return FastAnswer(200, headers, body)


ROUTE = Route(resolve, PARAMETERS)
