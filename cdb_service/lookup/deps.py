"""The lookup index follower: a dependency for handlers, a function of the scope for the
fast paths."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope

from cdb_service.lookup.follower import IndexFollower
from cdb_service.web.deps import part, state_of

STATE_KEY = "lookup"


def provide_lookup(state: State) -> IndexFollower:
    return part(state, STATE_KEY, IndexFollower)


def lookup_of(scope: Scope) -> IndexFollower:
    """For the fast paths (`/resolve`, routing-table 304s), which answer before DI runs."""
    return provide_lookup(state_of(scope))


DEPENDENCIES = {STATE_KEY: Provide(provide_lookup, sync_to_thread=False)}
