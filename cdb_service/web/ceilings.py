"""Ceilings on expensive work: how many extracts, long polls or imports run at once,
per client and in all.

Work beyond a client's own share is that client's to slow down (429); beyond the
service's total it is everyone's (503). Both say when to come back (`Retry-After`), and
neither queues: a queue of extracts is memory the service does not promise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from cdb_service.kernel.problems import BUSY, RATE_LIMITED


@dataclass
class Ceiling:
    what: str  # "full extracts", for the refusal
    total: int
    per_client: int
    retry_after_s: int = 5
    _running: Counter[str] = field(default_factory=Counter)

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def enter(self, client: str) -> None:
        headers = {"Retry-After": str(self.retry_after_s)}
        if self._running[client] >= self.per_client:
            raise RATE_LIMITED(f"this client already runs {self._running[client]} {self.what}, "
                               f"the most one client may; retry after {self.retry_after_s} s",
                               headers=headers)  # fmt: skip
        if self.running >= self.total:
            raise BUSY(
                f"the service already runs {self.running} {self.what}, "
                f"its most; retry after {self.retry_after_s} s",
                headers=headers,
            )
        self._running[client] += 1

    def leave(self, client: str) -> None:
        self._running[client] -= 1
        if self._running[client] <= 0:
            del self._running[client]

    @asynccontextmanager
    async def slot(self, client: str) -> AsyncIterator[None]:
        self.enter(client)
        try:
            yield
        finally:
            self.leave(client)

    def held_while(self, client: str, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Take a slot now (refusing at once if there is none) and keep it until `body`,
        a streamed answer, has been sent or abandoned."""
        self.enter(client)

        async def streaming() -> AsyncIterator[bytes]:
            try:
                async for chunk in body:
                    yield chunk
            finally:
                self.leave(client)

        return streaming()


@dataclass
class Ceilings:
    extracts: Ceiling
    long_polls: Ceiling
    imports: Ceiling
