"""Dependencies every context may ask for (settings, the engine, sessions), and `component`.

The composition root puts each part of the running service in the app state
under its name (`Services.as_state`). Each context's `deps.py` offers the parts
it owns as typed dependencies, so a handler names what it needs
(`reads: NamedDependency[EntryReads]`) and nothing else.
"""

from __future__ import annotations

from typing import Any, cast

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.settings import Settings
from cdb_service.web.ceilings import Ceilings


def component(scope: Scope, name: str) -> Any:
    """A part of the running service straight from the app state, without DI.

    For the few places DI cannot reach or should not: ASGI middleware (the gate runs
    before routing) and the hottest routes (`/resolve`, routing-table 304s), where
    resolving a dependency costs a noticeable share of a request that is otherwise
    a dictionary look-up.
    """
    return scope["litestar_app"].state[name]


def provide_settings(state: State) -> Settings:
    return cast(Settings, state.settings)


def provide_engine(state: State) -> AsyncEngine:
    return cast(AsyncEngine, state.engine)


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    return cast(async_sessionmaker[AsyncSession], state.sessions)


def provide_ceilings(state: State) -> Ceilings:
    return cast(Ceilings, state.ceilings)


DEPENDENCIES = {
    "ceilings": Provide(provide_ceilings, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "engine": Provide(provide_engine, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
}
