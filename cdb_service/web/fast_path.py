"""One way past the framework, for the hottest read routes in their plain case only.

`GET /api/v1/resolve` and the routing table's 304 are answered all day long by every
RIS and connector; for them litestar's routing, parameter model, guard (it copies
the handler for each guard call), response object and compression check cost more
than the look-up itself. `FastPath` is ASGI middleware placed after the gate, so
mutual TLS, the token and its binding are checked for these requests exactly as for
every other; it hands a request to the route registered for its exact path when
the request is plain: GET, each query parameter named by the route and given once
with a value, and an answer the client takes as it is (JSON or anything, no
compression asked for). The route answers, or declines (returns None) for anything
it does not do the plain way: a parameter to validate, an error, a wait. A declined
request goes to the framework as it always did, so validation errors, problems,
refusals and their audit, content negotiation, compression and the OpenAPI contract
stay the framework's; a route's fast answer must be the one its handler would give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cdb_service.kernel.problems import Problem


@dataclass(frozen=True)
class FastAnswer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


# The route's answer from the request's scope and its query parameters, or None.
FastRoute = Callable[[Scope, dict[str, str]], FastAnswer | None]


@dataclass(frozen=True)
class Route:
    answer: FastRoute
    parameters: frozenset[str]


# Parsed query strings are remembered (clients repeat theirs): this many. Query strings
# up to REMEMBERED_QUERY_BYTES long are remembered, here and by a route that keeps its
# whole answers (`lookup/fast.py`); a longer one is read anew each time.
QUERY_MEMO_SIZE = 4096
REMEMBERED_QUERY_BYTES = 256

_JSON = (b"", b"*/*", b"application/json", b"application/*")


def _plain(scope: Scope) -> tuple[bool, bool]:
    """(JSON acceptable as it is: no negotiation to do, compression asked for)."""
    compress = False
    for name, value in scope["headers"]:
        lowered = name.lower()
        if lowered == b"accept-encoding" and value.strip() not in (b"", b"identity"):
            compress = True
        if lowered == b"accept" and value.strip().lower() not in _JSON:
            return False, compress
    return True, compress


def query_of(scope: Scope, allowed: frozenset[str]) -> dict[str, str] | None:
    """The query parameters if each is allowed, given once and not blank; else None.
    (The perimeter has already refused a query that is not UTF-8 or holds controls.)"""
    raw: bytes = scope.get("query_string", b"")
    pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True) if raw else []
    params = dict(pairs)
    if len(params) != len(pairs) or not allowed.issuperset(params):
        return None
    if any(not value for value in params.values()):
        return None
    return params


class FastPath:
    """Routes by exact path; `routes` is set by the composition root. `compress_from`:
    the framework compresses bodies from this size on when asked, so such an answer is
    left to it."""

    def __init__(self, app: ASGIApp, routes: dict[str, Route] | None = None,
                 compress_from: int = 0) -> None:  # fmt: skip
        self.app = app
        self.routes = routes or {}
        self.compress_from = compress_from
        self._queries: dict[tuple[str, bytes], dict[str, str] | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("path", "")) if scope["type"] == ScopeType.HTTP else None
        if route is not None and scope.get("method") == "GET":
            answer = self._answer(scope, route)
            if answer is not None:
                scope["path_template"] = scope["path"]  # type: ignore[typeddict-unknown-key]
                await _send(send, answer)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope, route: Route) -> FastAnswer | None:
        plain, compress = _plain(scope)
        params = self._query(scope, route) if plain else None
        if params is None:
            return None
        try:
            answer = route.answer(scope, params)
        except Problem:
            return None  # the framework answers it, in its own words
        if answer is not None and compress and len(answer.body) >= self.compress_from:
            return None
        return answer

    def _query(self, scope: Scope, route: Route) -> dict[str, str] | None:
        """`query_of`, remembered for short query strings (a route only reads the dict)."""
        raw: bytes = scope.get("query_string", b"")
        if len(raw) > REMEMBERED_QUERY_BYTES:
            return query_of(scope, route.parameters)
        key = (scope["path"], raw)
        try:
            return self._queries[key]
        except KeyError:
            pass
        if len(self._queries) >= QUERY_MEMO_SIZE:
            self._queries.clear()  # a client cycling through new queries: start again
        params = self._queries[key] = query_of(scope, route.parameters)
        return params


async def _send(send: Send, answer: FastAnswer) -> None:
    headers = list(answer.headers)
    if answer.status != 304:
        headers.append((b"content-length", str(len(answer.body)).encode()))
    start = {"type": "http.response.start", "status": answer.status, "headers": headers}
    await send(cast(Message, start))
    await send(cast(Message, {"type": "http.response.body", "body": answer.body}))
