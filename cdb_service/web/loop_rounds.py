"""Short rounds of the event loop under load: at most `per_round` requests start their
work in one round, the others wait their turn in the order they came.

In each round a worker's event loop runs every callback that has become ready. With
64 busy connections that is 64 requests' work before a timer, a background flush or
the lag monitor (`loop_lag.py`) runs again: every lag sample of one pinned worker
under `make bench`'s load fell between 10 and 50 ms. Past `per_round` requests in a
round, a request waits on a future that a later round releases: a round then holds at
most `per_round` requests' work plus the short waits of the others, and requests are
served in arrival order. With 4 per round the same load left the samples at 1–2 ms
(8: 2–5 ms, 16: 2–10 ms, 32: 5–25 ms), with throughput within the noise of a run on
this project's machines. A worker that is not that busy never waits. Every
request takes its turn the same way, health probes included: a probe waits behind
those that came before it, as it did before, and no request is refused.
"""

from __future__ import annotations

import asyncio
from collections import deque

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

# Requests whose work starts in one round of the loop (see above for the figures).
PER_ROUND = 4


class LoopRounds:
    """ASGI middleware around the whole app (`app.create_app`)."""

    def __init__(self, app: ASGIApp, per_round: int = PER_ROUND) -> None:
        self.app = app
        self.per_round = per_round
        self._loop: asyncio.AbstractEventLoop | None = None
        self._left = per_round
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._round_ends = False  # `_next_round` is scheduled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            self._on_this_loop()
            if self._waiting or self._left <= 0:
                waiter = asyncio.get_running_loop().create_future()
                self._waiting.append(waiter)
                self._end_round()
                await waiter  # cancelled (client gone, shutdown): `_next_round` skips it
            else:
                self._left -= 1
                self._end_round()
        await self.app(scope, receive, send)

    def _on_this_loop(self) -> None:
        """A new loop (the app started again, a test's loop) starts afresh: what waited on
        the old one is gone with it."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._left, self._round_ends = loop, self.per_round, False
            self._waiting = deque()

    def _end_round(self) -> None:
        """The next round of the loop gives a new allowance (one call per round)."""
        if not self._round_ends:
            self._round_ends = True
            asyncio.get_running_loop().call_soon(self._next_round)

    def _next_round(self) -> None:
        self._round_ends = False
        self._left = self.per_round
        while self._waiting and self._left > 0:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._left -= 1
        # Those released work in the next round: that one must give an allowance too.
        if self._waiting or self._left < self.per_round:
            self._end_round()
