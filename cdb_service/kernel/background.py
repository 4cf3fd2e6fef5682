"""A coroutine a part of the service runs beside the requests, for as long as it runs.

One mechanism for every such loop (the notification rounds, the event-loop lag monitor,
the rollout gauges, the refusal and consultation flushes): started once however often
`start` is called, and at `stop` cancelled and awaited, so a stopping worker leaves no
task that wakes up after its connections are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class Background:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, run: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
