"""Refusals in the audit trail, bounded whatever a client varies.

Refusals are grouped by their source: the client's address (behind the trusted proxy,
the address it forwards; an IPv6 address by its /64, see `rate_limits.source_key`) and,
for an authenticated caller, its subject. Never by what a client chooses freely: a
certificate (a fresh self-signed one per request costs nothing), a token, a path, the
words of the reason.

In each window a source's first refusal is written at once, with the words the client
got; an authenticated caller's first few distinct attempts are too (every attempt on
another's entry is in the trail with its request ids). The rest of the window is
counted in memory and written as one event when it closes: how many (`repeated`), by
status, and the first few distinct targets, reasons and certificates, each with its
count. At most `max_sources` sources are held per window; the refusals of further
sources are counted in one overflow event. So refusals add at most
`max_sources × (NAMED + 1) + 1` events per window and worker, a flood from one source
two, and the trail still says how many refusals there were.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cdb_service.kernel.background import Background
from cdb_service.security import audit
from cdb_service.security.audit import Who
from cdb_service.security.rate_limits import source_key

ANONYMOUS = "anonymous"
NAMED = 10  # an authenticated caller's distinct attempts written in full per window
LISTED = 10  # distinct targets, reasons, certificates, sources listed in a count event
OTHERS = "(others)"  # the count of those beyond the listed ones
FURTHER = "(further sources)"  # the subject of the overflow window's event
_Sessions = async_sessionmaker[AsyncSession]


def _tally(counts: dict[str, int], key: str) -> None:
    if key not in counts and len(counts) >= LISTED:
        key = OTHERS
    counts[key] = counts.get(key, 0) + 1


@dataclass
class _Window:
    opened: float
    who: Who  # the first refusal's caller (certificate and request ids dropped if they vary)
    target: str
    outcome: str
    reason: str
    written: set[tuple[str, str, str]] = field(default_factory=set)
    repeats: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    certificates: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    def count(self, who: Who, target: str, status: int, reason: str, source: str) -> None:
        if not self.repeats:  # the count event names the first refusal it counts
            self.target, self.outcome, self.reason = target, f"denied-{status}", reason
            self.who = replace(self.who, request_id=None, client_request_id=None)
        self.repeats += 1
        if who.cert_thumbprint != self.who.cert_thumbprint:
            self.who = replace(self.who, cert_subject=None, cert_thumbprint=None)
        _tally(self.statuses, str(status))
        _tally(self.targets, target[:200])
        _tally(self.reasons, reason[:300])
        _tally(self.certificates, who.cert_thumbprint or "(none)")
        _tally(self.sources, source)

    def detail(self, window_s: float) -> dict[str, Any]:
        return {"reason": self.reason, "repeated": self.repeats, "window_s": window_s,
                "statuses": self.statuses, "targets": self.targets, "reasons": self.reasons,
                "certificates": self.certificates, "sources": self.sources}  # fmt: skip


@dataclass
class RefusalTrail:
    window_s: float = 60.0
    max_sources: int = 100  # sources held per window; further ones share one count
    _open: dict[tuple[str, str], _Window] = field(default_factory=dict)
    _overflow: _Window | None = None
    _loop: Background = field(default_factory=lambda: Background("refusal-trail"))

    async def record(self, sessions: _Sessions, who: Who, target: str, status: int,
                     reason: str) -> None:  # fmt: skip
        if not self.window_s:  # every refusal as it happens
            await _write_first(sessions, who, target, status, reason)
            return
        # The windows change in one step, before any write: a write awaits, and other
        # refusals (and the flush) run meanwhile.
        closed: list[_Window] = []
        first = self._tally(time.monotonic(), who, target, status, reason, closed)
        for window in closed:
            await self._write_count(sessions, window)
        if first:
            await _write_first(sessions, who, target, status, reason)

    def _tally(self, now: float, who: Who, target: str, status: int, reason: str,
               closed: list[_Window]) -> bool:  # fmt: skip
        """Counts a refusal (True: it is to be written in full); `closed` gets the windows
        to write."""
        source = source_key(who.source_ip)
        key = (source, who.subject)
        window = self._open.get(key)
        if window is not None and now - window.opened >= self.window_s:
            closed.append(self._open.pop(key))
            window = None
        if window is None:
            if len(self._open) >= self.max_sources:
                closed += self._closed(now)  # closed windows make room
            if len(self._open) >= self.max_sources:
                self._further(now, closed).count(who, target, status, reason, source)
                return False
            window = self._open[key] = _Window(now, who, target, f"denied-{status}", reason)
        attempt = (str(status), target, reason)
        named = 1 if who.subject == ANONYMOUS else NAMED
        if attempt not in window.written and len(window.written) < named:
            window.written.add(attempt)
            return True
        window.count(who, target, status, reason, source)
        return False

    def _further(self, now: float, closed: list[_Window]) -> _Window:
        """The one window of the sources beyond `max_sources` (nothing written at once)."""
        window = self._overflow
        if window is not None and now - window.opened >= self.window_s:
            closed.append(window)
            window = None
        if window is None:
            window = self._overflow = _Window(now, Who(subject=FURTHER), "", "", "")
        return window

    def _closed(self, now: float, everything: bool = False) -> list[_Window]:
        """The windows that have closed (all of them: `everything`), taken out."""
        closed = [key for key, w in self._open.items()
                  if everything or now - w.opened >= self.window_s]  # fmt: skip
        taken = [self._open.pop(key) for key in closed]
        overflow = self._overflow
        if overflow is not None and (everything or now - overflow.opened >= self.window_s):
            self._overflow = None
            taken.append(overflow)
        return taken

    async def _write_count(self, sessions: _Sessions, window: _Window) -> None:
        if window.repeats:
            await audit.record(sessions, window.who, "access", window.outcome, window.target,
                               window.detail(self.window_s))  # fmt: skip

    async def flush(self, sessions: _Sessions, everything: bool = False) -> None:
        """Write the counts of closed windows (of every window, at shutdown)."""
        for window in self._closed(time.monotonic(), everything):
            await self._write_count(sessions, window)

    def start(self, sessions: _Sessions) -> None:
        if not self.window_s:
            return

        async def every_window() -> None:
            while True:
                await asyncio.sleep(self.window_s)
                with contextlib.suppress(Exception):  # the next round tries again
                    await self.flush(sessions)

        self._loop.start(every_window)

    async def stop(self, sessions: _Sessions) -> None:
        await self._loop.stop()
        with contextlib.suppress(Exception):
            await self.flush(sessions, everything=True)


async def _write_first(sessions: _Sessions, who: Who, target: str, status: int,
                       reason: str) -> None:  # fmt: skip
    await audit.record(sessions, who, "access", f"denied-{status}", target, {"reason": reason})
