"""Every request gets the service's own id and one access log line.

The id is the service's: made here, or by the reverse proxy in front (nginx's
`$request_id`, believed only from the proxy, see `SecurityGate.from_proxy`). An id the
client chose is kept apart as `client_request_id` (in the log and the audit trail) and
answered in `X-Client-Request-ID`: a client cannot make two requests look like one, or
one look like another's.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cdb_service import metrics
from cdb_service.logging import get_logger

HEADER = b"x-request-id"
CLIENT_HEADER = b"x-client-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _sane(value: bytes | None) -> str | None:
    text = (value or b"").decode("latin-1")
    return text if _SANE.match(text) else None


# A fresh id per request: this process's random half and a counter (32 hex digits, as
# before). Unique without a system call per request, which cost more than the counter.
_PROCESS = os.urandom(8).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _fresh_half() -> None:
    """Workers are forks of one process: each draws its own random half."""
    global _PROCESS, _COUNTER
    _PROCESS = os.urandom(8).hex()
    _COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_fresh_half)


def _new_id() -> str:
    return f"{_PROCESS}{next(_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def _ids(scope: Scope, from_proxy: Callable[[Scope], bool] | None) -> tuple[str, str | None]:
    """(the service's id, the client's id) of a request."""
    headers = dict(scope["headers"])
    if from_proxy is not None and from_proxy(scope):
        # nginx sends its own id and passes the client's on (deploy/nginx).
        return _sane(headers.get(HEADER)) or _new_id(), _sane(headers.get(CLIENT_HEADER))
    return _new_id(), _sane(headers.get(HEADER))


class RequestIdMiddleware:
    """`from_proxy`: whether a request came through a trusted reverse proxy, whose id is
    then believed; the composition root hands it over (the security gate decides it)."""

    def __init__(self, app: ASGIApp, from_proxy: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.from_proxy = from_proxy
        self.log = get_logger("cdb.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id, client_request_id = _ids(scope, self.from_proxy)
        state = scope.setdefault("state", {})
        state["request_id"], state["client_request_id"] = request_id, client_request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if client_request_id:
            structlog.contextvars.bind_contextvars(client_request_id=client_request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500, "observed": False}

        def observe() -> float:
            elapsed = time.perf_counter() - started
            if not status["observed"]:
                status["observed"] = True
                _observe(scope, status["code"], elapsed)
            return elapsed

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((HEADER, request_id.encode()))
                if client_request_id:
                    headers.append((CLIENT_HEADER, client_request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last byte leaves: a scrape made after the client
                # has its answer always includes it (one sample either way).
                observe()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = observe()
            self.log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status["code"],
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id", "client_request_id")


def _observe(scope: Scope, status: int, seconds: float) -> None:
    """One sample per request, labelled by the route's template (not the path: ids
    would make a series per entry); requests no route matched share one label."""
    route = scope.get("path_template") or "unmatched"  # type: ignore[typeddict-item]
    code = metrics.status_class(status)
    metrics.REQUEST_SECONDS.labels(route, scope.get("method", ""), code).observe(seconds)
    if status in (401, 403, 429):
        metrics.REFUSED.labels(str(status)).inc()
