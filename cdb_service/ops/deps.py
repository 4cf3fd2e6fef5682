"""The operations parts handlers ask for: write readiness's shared answer."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from cdb_service.ops.write_ready import WriteReadiness
from cdb_service.web.deps import part

STATE_KEY = "write_readiness"


def provide_write_readiness(state: State) -> WriteReadiness:
    return part(state, STATE_KEY, WriteReadiness)


DEPENDENCIES = {STATE_KEY: Provide(provide_write_readiness, sync_to_thread=False)}
