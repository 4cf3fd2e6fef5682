"""What one connection may cost before the app sees a request: the limits nginx enforces
at the edge, enforced by the service itself in direct TLS mode (and on its own sockets
in proxy mode too).

uvicorn's httptools protocol parses a request head of any size, with any number of
header fields, for as long as the client takes, and keeps a connection that never sends
a request open for ever. `GuardedProtocol` (a subclass, like the rest of
`security.tls`) bounds each of these *while the bytes arrive*, before they are
collected:

- the request head: its bytes (counted as they are fed to the parser, so a huge value
  is refused after at most one socket read beyond the limit), its fields, and each
  field's length: a 431 problem, then the connection closes;
- a head that has not arrived `header_timeout_s` after the connection opened (or
  after its first byte): a 408 problem (nothing, if no byte came), then close;
- a body of which nothing arrived for `body_timeout_s`: close (the app sees a
  disconnect);
- an idle keep-alive connection: uvicorn's own `timeout_keep_alive`;
- more than `max_connections` open connections in this worker: a 503 problem and close.

A refusal is written, then the connection lingers briefly, reading and discarding what
the client is still sending, so that the client reads the answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from cdb_service.kernel.page_headers import HSTS
from cdb_service.kernel.problems import (
    BUSY,
    HEADERS_TOO_LARGE,
    MALFORMED,
    REQUEST_TIMEOUT,
    Problem,
)

log = logging.getLogger("cdb.connection")

# The attribute of uvicorn's Config that carries the limits to every protocol instance
# (the Config is pickled to each worker process, so the limits travel with it).
CONFIG_ATTRIBUTE = "cdb_connection_limits"
# After a refusal: how long the connection keeps reading (and discarding) at most, and
# how much, before it closes.
LINGER_S = 2.0
LINGER_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32_768
    max_header_fields: int = 100
    max_header_field_bytes: int = 8192
    header_timeout_s: float = 60.0
    body_timeout_s: float = 60.0
    max_connections: int = 1024
    retry_after_s: int = 5


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def problem_bytes(problem: Problem, https: bool) -> bytes:
    """The whole HTTP/1.1 answer for a refusal at the connection, closing it."""
    body = json.dumps(problem.as_dict()).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if https:
        headers.append((b"strict-transport-security", HSTS.encode()))
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return STATUS_LINE[problem.status] + head + b"\r\n" + body


class GuardedProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:  # fmt: skip
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, CONFIG_ATTRIBUTE, ConnectionLimits())
        self._in_head = True  # reading a request line and headers (not a body, not idle)
        self._head_bytes = 0
        self._head_fields = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._discarded = 0

    # --- the connection ----------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d connections open in this worker",
                        len(self.connections))  # fmt: skip
            self._refuse(BUSY(
                f"this worker has {self.limits.max_connections} connections open; try again",
                headers={"Retry-After": str(self.limits.retry_after_s)},
            ))  # fmt: skip
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._discarded += len(data)
            if self._discarded > LINGER_BYTES:
                self.transport.close()
            return
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        elif self._body_timer is not None:
            self._arm_body_timer()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            cause = error.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.problem)
            else:
                self._refuse(MALFORMED("the request could not be read as HTTP/1.1"))
            return
        if self._in_head and self._head_bytes > self.limits.max_header_bytes:
            self._refuse(HEADERS_TOO_LARGE(
                f"the request line and headers are longer than {self.limits.max_header_bytes} bytes"
            ))  # fmt: skip

    # --- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > self.limits.max_header_fields:
            raise _Refused(HEADERS_TOO_LARGE(
                f"the request has more than {self.limits.max_header_fields} header fields"
            ))  # fmt: skip
        if len(name) + len(value) > self.limits.max_header_field_bytes:
            raise _Refused(HEADERS_TOO_LARGE(
                f"a header field is longer than {self.limits.max_header_field_bytes} bytes",
            ))  # fmt: skip
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._head_fields = 0
        self._cancel(self._head_timer)
        self._head_timer = None
        if any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers):
            self._arm_body_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    # --- timers and refusals ---------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)

    def _arm_body_timer(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:
            self.transport.close()  # nothing came: nobody to answer
            return
        self._refuse(REQUEST_TIMEOUT(
            f"the request's headers did not arrive within {self.limits.header_timeout_s:g} s"
        ), linger_s=0)  # fmt: skip

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the app is not reading: not the client's delay
            self._arm_body_timer()
            return
        log.info("closing a connection whose body stalled for %g s", self.limits.body_timeout_s)
        self.transport.close()

    def _refuse(self, problem: Problem, linger_s: float = LINGER_S) -> None:
        """Answer, stop parsing, linger a little reading what still comes, close."""
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        self.transport.write(problem_bytes(problem, self.scheme == "https"))
        if linger_s <= 0:
            self.transport.close()
            return
        self.loop.call_later(linger_s, self.transport.close)
        if self.flow is not None:
            self.flow.resume_reading()  # keep draining what the client sends

    def _cancel_timers(self) -> None:
        self._cancel(self._head_timer)
        self._cancel(self._body_timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()
