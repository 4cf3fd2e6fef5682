"""A leak planted in a service process, to show that the soak catches one.

On the `PYTHONPATH` of `cdb-service serve` with `CDB_TEST_LEAK_BYTES=N`, every HTTP
request the app is handed keeps N bytes forever. Python imports this module at start
(`sitecustomize`); only litestar is touched, which imports nothing of the service.
"""

from __future__ import annotations

import os
from typing import Any

_SIZE = int(os.environ.get("CDB_TEST_LEAK_BYTES", "0"))
_held: list[bytearray] = []

if _SIZE:
    from litestar import Litestar

    _original = Litestar.__call__

    async def _leaking(self: Litestar, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            _held.append(bytearray(b"x" * _SIZE))  # written: resident, not just reserved
        await _original(self, scope, receive, send)

    Litestar.__call__ = _leaking  # type: ignore[method-assign]
