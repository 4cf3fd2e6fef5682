"""Where the app state is read: the generic helper, and the parts every context may ask for.

The composition root builds every part of the running service at start-up and puts
each in the app state under its name (`Services.as_state`). Only `deps.py` modules
read that state: each context's offers the parts it owns as typed dependencies, so
a handler names what it needs (`reads: NamedDependency[EntryReads]`) and nothing
else, and, for code that runs before dependency injection (ASGI middleware, the fast
path), as one named, typed function of the ASGI scope (`lookup_of`, `gate_of`).
`tests/architecture/test_wiring.py` keeps every other module off the state.
"""

from __future__ import annotations

from typing import TypeVar

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cdb_service.settings import Settings
from cdb_service.web.ceilings import Ceilings
from cdb_service.web.consistency import ReadYourWrites
from cdb_service.web.draining import Drain

T = TypeVar("T")


def part(state: State, name: str, kind: type[T]) -> T:
    """The part built at start-up under `name`, checked to be a `kind`.

    A part the composition root did not build is a mistake in the wiring, said here
    by name rather than as a KeyError deep in a handler.
    """
    found = state.get(name)
    if not isinstance(found, kind):
        raise RuntimeError(f"the app holds no {kind.__name__} as {name!r}: it was not wired")
    return found


def state_of(scope: Scope) -> State:
    """The app state of a request, for the providers that run before DI."""
    state: State = scope["litestar_app"].state
    return state


def settings_of(scope: Scope) -> Settings | None:
    """The settings, for the error handlers; None in an app without them (the mirror's)."""
    found = state_of(scope).get("settings")
    return found if isinstance(found, Settings) else None


def sessions_of(scope: Scope) -> async_sessionmaker[AsyncSession]:
    """The database sessions, for the gate's refusal trail (middleware, before DI)."""
    return part(state_of(scope), "sessions", async_sessionmaker)


def drain_of(scope: Scope) -> Drain | None:
    """Whether this worker stops, for the middleware that refuses new requests; None in
    an app that has no drain (the mirror's)."""
    found = state_of(scope).get("drain")
    return found if isinstance(found, Drain) else None


def provide_drain(state: State) -> Drain:
    return part(state, "drain", Drain)


def provide_settings(state: State) -> Settings:
    return part(state, "settings", Settings)


def provide_engine(state: State) -> AsyncEngine:
    return part(state, "engine", AsyncEngine)


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    return part(state, "sessions", async_sessionmaker)


def provide_ceilings(state: State) -> Ceilings:
    return part(state, "ceilings", Ceilings)


def provide_read_your_writes(state: State) -> ReadYourWrites:
    """`min_revision` on reads a worker's lookup index serves (the service's or a mirror's)."""
    return part(state, "read_your_writes", ReadYourWrites)


DEPENDENCIES = {
    "ceilings": Provide(provide_ceilings, sync_to_thread=False),
    "drain": Provide(provide_drain, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "engine": Provide(provide_engine, sync_to_thread=False),
    "sessions": Provide(provide_sessions, sync_to_thread=False),
    "read_your_writes": Provide(provide_read_your_writes, sync_to_thread=False),
}
