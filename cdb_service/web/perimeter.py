"""The perimeter every request passes before any route sees it, and every answer leaves by.

In: a request line of bounded length (414 beyond it) whose query parameters are
valid UTF-8 without control characters (400 naming the parameter), so that a NUL
or a megabyte of path never reaches a database or the audit trail.
Out: `X-Content-Type-Options: nosniff` everywhere, HSTS on the service's own TLS
port, and `Cache-Control: no-store` on API answers that may carry named persons or
credentials (public lookups keep `private, no-cache` so that their ETags pay off).
"""

from __future__ import annotations

import re
from typing import Any, cast
from urllib.parse import parse_qsl, unquote_to_bytes

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cdb_service.kernel import page_headers
from cdb_service.kernel.problems import URI_TOO_LONG, FieldError, Problem, malformed
from cdb_service.kernel.text import unprintable
from cdb_service.settings import ApiDeprecation
from cdb_service.web import deprecation
from cdb_service.web.negotiation import problem_form
from cdb_service.web.pages import SCRIPTED_PAGE_POLICY

# RFC 9110 9.2.1: the methods that change nothing. A request with any other is a write
# (the write guard, and what a 503 tells the client about its write).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

MAX_PATH = 2048
MAX_QUERY = 8192
HSTS = page_headers.HSTS.encode()
HTML_POLICY = SCRIPTED_PAGE_POLICY.encode()
# Public answers: the same for every caller, never with named persons.
_REVALIDATED = ("/api/v1/resolve", "/api/v1/routing-table", "/api/v1/extract", "/api/v1/changes")


# Every character `kernel.text.unprintable` refuses: controls (C0, DEL, C1) and
# non-characters (U+FDD0–U+FDEF and the last two of every plane); a strict UTF-8
# decode has already refused lone surrogates.
_REFUSED = re.compile(
    "[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef"
    + "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17))
    + "]"
)


def _clean(raw: bytes) -> bool:
    """The whole query at once: UTF-8 once unquoted, and no character any parameter
    refuses. The common case costs one decode and one search instead of a parse and a
    check per parameter; a query that fails is parsed to say where (`_query_problem`)."""
    try:
        text = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return _REFUSED.search(text) is None


def _query_problem(raw: bytes) -> Problem | None:
    if _clean(raw):
        return None
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return malformed("the query string is not UTF-8", FieldError(("query",), "not UTF-8"))
    for name, value in pairs:
        bad = unprintable(name) or unprintable(value)
        if bad is not None:
            where = name if unprintable(name) is None else "?"
            return malformed(
                f"query parameter {where[:40]!r} holds the character U+{ord(bad):04X}, "
                "which no parameter accepts",
                FieldError(("query", where[:40]), f"holds U+{ord(bad):04X}"),
            )  # fmt: skip
    return None


def check_request_line(scope: Scope) -> Problem | None:
    path = (scope.get("raw_path") or scope.get("path", "").encode()).partition(b"?")[0]
    if len(path) > MAX_PATH:
        return URI_TOO_LONG(f"the path is longer than {MAX_PATH} bytes")
    query: bytes = scope.get("query_string", b"")
    if len(query) > MAX_QUERY:
        return URI_TOO_LONG(f"the query string is longer than {MAX_QUERY} bytes")
    return _query_problem(query) if query else None


async def send_problem(send: Send, problem: Problem,
                       extra: list[tuple[bytes, bytes]] | None = None,
                       scope: Scope | None = None) -> None:  # fmt: skip
    """A problem answered from middleware, before (or instead of) any route."""
    media_type, body = problem_form(scope, problem)
    headers = [(b"content-type", media_type.encode()),
               (b"content-length", str(len(body)).encode()), *(extra or [])]  # fmt: skip
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    start = {"type": "http.response.start", "status": problem.status, "headers": headers}
    await send(cast(Message, start))
    await send(cast(Message, {"type": "http.response.body", "body": body}))


class Perimeter:
    def __init__(self, app: ASGIApp, hsts: bool = False,
                 deprecations: dict[str, ApiDeprecation] | None = None) -> None:  # fmt: skip
        self.app = app
        self.fixed: list[tuple[bytes, bytes]] = [(b"x-content-type-options", b"nosniff")]
        if hsts:
            self.fixed.append((b"strict-transport-security", HSTS))
        self.retired = deprecation.announcements(deprecations or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        problem = check_request_line(scope)
        cache = _cache_control(scope.get("path", ""))
        fixed = self.fixed
        if self.retired:
            fixed = [*fixed, *deprecation.for_path(self.retired, scope.get("path", ""))]
        if problem is not None:
            await send_problem(send, problem, [*fixed, (b"cache-control", b"no-store")], scope)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in fixed if h[0] not in names]
                if cache is not None and b"cache-control" not in names:
                    headers.append((b"cache-control", cache))
                if b"content-security-policy" not in names and any(
                    n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers
                ):
                    headers.append((b"content-security-policy", HTML_POLICY))
                message = cast(Message, {**message, "headers": headers})
            await send(message)

        await self.app(scope, receive, with_headers)


def _cache_control(path: str) -> bytes | None:
    if not path.startswith(("/api/", "/dev-issuer", "/console")):
        return None
    if path.startswith(_REVALIDATED):
        return b"private, no-cache"
    return b"no-store"
