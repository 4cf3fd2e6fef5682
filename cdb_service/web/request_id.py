"""Every request gets an id (an incoming `X-Request-ID` is kept) and one access log line."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cdb_service import metrics
from cdb_service.logging import get_logger

HEADER = b"x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger("cdb.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(HEADER, b"").decode("latin-1")
        request_id = given if _SANE.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            _observe(scope, status["code"], elapsed)
            self.log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status["code"],
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


def _observe(scope: Scope, status: int, seconds: float) -> None:
    """One sample per request, labelled by the route's template (not the path: ids
    would make a series per entry); requests no route matched share one label."""
    route = scope.get("path_template") or "unmatched"  # type: ignore[typeddict-item]
    code = metrics.status_class(status)
    metrics.REQUEST_SECONDS.labels(route, scope.get("method", ""), code).observe(seconds)
    if status in (401, 403, 429):
        metrics.REFUSED.labels(str(status)).inc()
