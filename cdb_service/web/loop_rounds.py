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
    """ASGI middleware around the whole app (`app.create_app`). Each event loop that runs
    the app has rounds of its own: a worker has one, but an app started again, or served
    from a thread beside a test's loop, runs on another."""

    def __init__(self, app: ASGIApp, per_round: int = PER_ROUND) -> None:
        self.app = app
        self.per_round = per_round
        self._last: _Rounds | None = None
        self._by_loop: dict[int, _Rounds] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            await self._rounds().turn()
        await self.app(scope, receive, send)

    def _rounds(self) -> _Rounds:
        loop = asyncio.get_running_loop()
        rounds = self._last
        if rounds is None or rounds.loop is not loop:
            rounds = self._by_loop.get(id(loop))
            if rounds is None or rounds.loop is not loop:
                # Closed loops go (what waited on one went with it), so ids are not reused.
                live = {key: r for key, r in self._by_loop.items() if not r.loop.is_closed()}
                rounds = live[id(loop)] = _Rounds(loop, self.per_round)
                self._by_loop = live
            self._last = rounds
        return rounds


class _Rounds:
    """One loop's allowance and the requests waiting on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, per_round: int) -> None:
        self.loop = loop
        self.per_round = per_round
        self.left = per_round
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.round_ends = False  # `_next_round` is scheduled

    async def turn(self) -> None:
        """Return when this request may start its work."""
        if self.waiting or self.left <= 0:
            waiter = self.loop.create_future()
            self.waiting.append(waiter)
            self._end_round()
            await waiter  # cancelled (client gone, shutdown): `_next_round` skips it
        else:
            self.left -= 1
            self._end_round()

    def _end_round(self) -> None:
        """The next round of the loop gives a new allowance (one call per round)."""
        if not self.round_ends:
            self.round_ends = True
            self.loop.call_soon(self._next_round)

    def _next_round(self) -> None:
        self.round_ends = False
        self.left = self.per_round
        while self.waiting and self.left > 0:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self.left -= 1
        # Those released work in the next round: that one must give an allowance too.
        if self.waiting or self.left < self.per_round:
            self._end_round()
