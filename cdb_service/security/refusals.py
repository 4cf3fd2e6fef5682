"""Refusals in the audit trail, without letting a flood of them grow it.

The first refusal of a source (address, or certificate once known) for one status
and reason is written at once, with the words the client got. Repeats within the
window are counted in memory and written as one event (`repeated: N`) when the
window closes, so 5,000 refused requests from one address cost a handful of rows,
and the trail still says how many there were.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.security import audit
from cdb_service.security.audit import Who

MAX_OPEN = 10_000  # windows held in memory; beyond, the oldest is written early


@dataclass
class _Window:
    opened: float
    who: Who
    target: str
    outcome: str
    reason: str
    repeats: int = 0


@dataclass
class RefusalTrail:
    window_s: float = 60.0
    _open: dict[tuple[str, str, str], _Window] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def record(self, sessions: async_sessionmaker[AsyncSession], who: Who, target: str,
                     status: int, reason: str) -> None:  # fmt: skip
        now = time.monotonic()
        source = who.cert_thumbprint or who.source_ip or "unknown"
        # An authenticated caller's refusals name each target (every attempt on another's
        # entry is in the trail); an anonymous flood is one source and reason, whatever
        # paths it makes up.
        attempt = target if who.subject != "anonymous" else ""
        key = (source, f"{status} {attempt}", reason[:300])
        window = self._open.get(key)
        if window is not None and now - window.opened < self.window_s:  # never when 0
            window.repeats += 1
            return
        if window is not None:
            await self._write_repeats(sessions, window)
        self._open[key] = _Window(now, who, target, f"denied-{status}", reason)
        await audit.record(sessions, who, "access", f"denied-{status}", target,
                           {"reason": reason})  # fmt: skip
        if len(self._open) > MAX_OPEN:
            oldest = min(self._open, key=lambda k: self._open[k].opened)
            await self._write_repeats(sessions, self._open.pop(oldest))

    async def _write_repeats(self, sessions: async_sessionmaker[AsyncSession],
                             window: _Window) -> None:  # fmt: skip
        if window.repeats:
            detail = {"reason": window.reason, "repeated": window.repeats,
                      "window_s": self.window_s}  # fmt: skip
            await audit.record(sessions, window.who, "access", window.outcome, window.target,
                               detail)  # fmt: skip
            window.repeats = 0

    async def flush(self, sessions: async_sessionmaker[AsyncSession], everything: bool = False
                    ) -> None:  # fmt: skip
        """Write the counts of closed windows (of every window, at shutdown)."""
        now = time.monotonic()
        for key, window in list(self._open.items()):
            if everything or now - window.opened >= self.window_s:
                del self._open[key]
                await self._write_repeats(sessions, window)

    def start(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        if not self.window_s:
            return

        async def every_window() -> None:
            while True:
                await asyncio.sleep(self.window_s)
                with contextlib.suppress(Exception):  # the next round tries again
                    await self.flush(sessions)

        self._task = asyncio.create_task(every_window())

    async def stop(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush(sessions, everything=True)
