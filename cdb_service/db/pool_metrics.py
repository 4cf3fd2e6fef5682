"""The connection pool's use and the database's errors, as metrics (SQLAlchemy events).

Hooked on the sync engine under the async one: pool events fire for every
checkout and checkin, `handle_error` for every failed statement or connect, which
is how a lost primary shows on a dashboard before readiness says so.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from cdb_service import metrics


def observe_pool(engine: AsyncEngine) -> None:
    sync = engine.sync_engine
    in_use = metrics.POOL_CONNECTIONS.labels("in_use")
    opened = metrics.POOL_CONNECTIONS.labels("open")

    @event.listens_for(sync, "connect")
    def _connect(*_: Any) -> None:
        opened.inc()

    @event.listens_for(sync, "close")
    def _close(*_: Any) -> None:
        opened.dec()

    @event.listens_for(sync, "close_detached")
    def _close_detached(*_: Any) -> None:
        opened.dec()

    @event.listens_for(sync, "checkout")
    def _checkout(*_: Any) -> None:
        in_use.inc()

    @event.listens_for(sync, "checkin")
    def _checkin(*_: Any) -> None:
        in_use.dec()

    @event.listens_for(sync, "handle_error")
    def _error(context: Any) -> None:
        original = context.original_exception
        metrics.DB_ERRORS.labels(type(original).__name__).inc()
