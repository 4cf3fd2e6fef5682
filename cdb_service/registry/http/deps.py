"""The registry's services as dependencies: reads, single writes, batches."""

from __future__ import annotations

from typing import cast

from litestar.datastructures import State
from litestar.di import Provide

from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites


def provide_reads(state: State) -> EntryReads:
    return cast(EntryReads, state.reads)


def provide_writes(state: State) -> EntryWrites:
    return cast(EntryWrites, state.writes)


def provide_batches(state: State) -> Batches:
    return cast(Batches, state.batches)


DEPENDENCIES = {
    "reads": Provide(provide_reads, sync_to_thread=False),
    "writes": Provide(provide_writes, sync_to_thread=False),
    "batches": Provide(provide_batches, sync_to_thread=False),
}
