"""A clean stop: what the service does between SIGTERM and its exit.

uvicorn, on SIGTERM, closes its listening sockets and waits for the requests in
flight; but a long poll would hold it for up to a minute, longer than systemd's
`TimeoutStopSec` or Kubernetes' grace period, and the stop would end in SIGKILL. So
each worker keeps a `Drain`: the signal marks it, long polls see the mark and answer
at once with what they have, and a request that still reaches the app (one already on
an open connection) is answered 503 with `Retry-After` instead of starting work the
stop would cut. Work in flight (an import, an extract) gets `drain_budget_s` to end
before uvicorn cancels it; a cancelled import rolls back whole in its transaction.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cdb_service.kernel.problems import NOT_READY, Problem
from cdb_service.logging import get_logger
from cdb_service.web.perimeter import SAFE_METHODS, send_problem

# The signals uvicorn stops on: the same ones start the drain.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
log = get_logger("cdb.drain")


class Drain:
    """Whether this worker is stopping. A plain flag, set from a signal handler (where
    only the simplest things are safe); the long polls look at it between their steps."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        self.since: float | None = None

    @property
    def stopping(self) -> bool:
        return self.since is not None

    def begin(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def cut(self, method: str) -> Problem:
        """The 503 for a request the stop cancelled at the end of the drain budget before
        it answered. Nobody can tell whether a write's commit was under way (the same safe
        assumption as for a database fault outside a unit of work): it may have applied."""
        retry = self.retry_after_s
        detail = f"this instance stopped before it could answer; try again in {retry} s"
        extra: dict[str, Any] = {"reason": "stopping", "retry_after_s": retry}
        if method not in SAFE_METHODS:
            extra["write"] = "may-have-applied"
            detail += (". The write may have been applied: repeat it with the same "
                       "Idempotency-Key, which returns the first result instead of a "
                       "duplicate, or read the entry (or the change feed) first")  # fmt: skip
        return NOT_READY(detail, extra=extra, headers={"Retry-After": str(retry)})

    def refusal(self, method: str) -> Problem:
        """The 503 for a request that arrives while the worker stops. Nothing of it was
        done, so a write is safe to repeat (at another instance, or here once it is back)."""
        retry = self.retry_after_s
        detail = f"this instance is stopping; try again in {retry} s"
        extra: dict[str, Any] = {"reason": "stopping", "retry_after_s": retry}
        if method not in SAFE_METHODS:
            extra["write"] = "not-applied"
            detail += "; the write was not applied, it is safe to repeat it"
        return NOT_READY(detail, extra=extra, headers={"Retry-After": str(retry)})

    @contextmanager
    def on_stop_signals(self) -> Iterator[None]:
        """While the app runs, a stop signal also begins the drain, then goes on to the
        server's own handler (uvicorn's, which starts its shutdown). Outside the main
        thread (an in-process test client) signals cannot be handled, and nothing is done."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

        def chained(sig: int, frame: FrameType | None) -> None:
            self.begin()
            handler = previous[signal.Signals(sig)]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:
                # Nobody else handles it: the default action (exit) after the mark.
                signal.signal(sig, signal.SIG_DFL)
                signal.raise_signal(sig)

        for sig in STOP_SIGNALS:
            signal.signal(sig, chained)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                if signal.getsignal(sig) is chained:
                    signal.signal(sig, handler)


class Draining:
    """ASGI middleware: while the worker stops, every new HTTP request is a 503 problem
    with `Retry-After` (readiness included: whatever routes traffic here stops); and a
    request the stop cancels before it answered is a 503 problem too, not uvicorn's
    bare 500."""

    def __init__(self, app: ASGIApp, drain_of: Callable[[Scope], Drain | None]) -> None:
        self.app = app
        self.drain_of = drain_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drain = self.drain_of(scope) if scope["type"] == ScopeType.HTTP else None
        if drain is None:
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        if drain.stopping:
            await send_problem(send, drain.refusal(method), scope=scope)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            if started or not drain.stopping:
                raise
            # uvicorn cancels what outlasts the drain budget and does not wait for it:
            # the answer is this request's last act, so the cancellation ends here.
            log.warning("request cut by the stop", path=scope["path"], method=method)
            await send_problem(send, drain.cut(method), scope=scope)
