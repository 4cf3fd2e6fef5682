"""The registry's services as dependencies: reads, single writes, batches."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide
from litestar.types import Scope

from cdb_service.registry.store.batches import Batches
from cdb_service.registry.store.reads import EntryReads
from cdb_service.registry.store.writes import EntryWrites
from cdb_service.web.deps import part, state_of


def provide_reads(state: State) -> EntryReads:
    return part(state, "reads", EntryReads)


def provide_writes(state: State) -> EntryWrites:
    return part(state, "writes", EntryWrites)


def provide_batches(state: State) -> Batches:
    return part(state, "batches", Batches)


def reads_of(scope: Scope) -> EntryReads:
    """For the owner guard, which runs before DI (`registry/http/entry_inputs.py`)."""
    return provide_reads(state_of(scope))


DEPENDENCIES = {
    "reads": Provide(provide_reads, sync_to_thread=False),
    "writes": Provide(provide_writes, sync_to_thread=False),
    "batches": Provide(provide_batches, sync_to_thread=False),
}
