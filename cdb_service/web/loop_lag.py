"""How late the event loop runs: the one figure that shows work on the loop that is not
a request (a swap of the index, a digest, a parse) as every request of the worker
feels it.

A task asks to be woken every `interval_s` and records how much later than asked it
was woken (`cdb_event_loop_lag_seconds`). A stall shorter than the interval is seen
only if a wake-up fell inside it, so the histogram undercounts short stalls and
never invents one; the bench reads its p99 during the resolve runs.
"""

from __future__ import annotations

import asyncio

from cdb_service import metrics
from cdb_service.kernel.background import Background

INTERVAL_S = 0.1


class LoopLag:
    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.worst = 0.0
        self._loop = Background("loop-lag")

    def start(self) -> None:
        self._loop.start(self._run)

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, loop.time() - due)
            self.worst = max(self.worst, lag)
            metrics.EVENT_LOOP_LAG.observe(lag)
