"""The lookup index follower as a dependency, and straight from the state on the hot path."""

from __future__ import annotations

from typing import cast

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope

from cdb_service.lookup.follower import IndexFollower
from cdb_service.web.deps import component

STATE_KEY = "lookup"


def lookup_of(scope: Scope) -> IndexFollower:
    """For `/resolve` and routing-table 304s (see `web.deps.component` for why)."""
    return cast(IndexFollower, component(scope, STATE_KEY))


def provide_lookup(state: State) -> IndexFollower:
    return cast(IndexFollower, state[STATE_KEY])


DEPENDENCIES = {STATE_KEY: Provide(provide_lookup, sync_to_thread=False)}
